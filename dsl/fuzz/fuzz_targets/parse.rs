//! Fuzz target: arbitrary UTF-8 through `parse`, `fmt` and `render`, optionally nested deep.
//!
//! Parsing must never panic. Diagnostics must render. When the text parses, its formatted form
//! must parse back to an equal tree (spans compare equal by design, comments included) and
//! formatting must be idempotent.
//!
//! Input whose first byte is `\x01` carries a nesting instruction instead: the next byte picks
//! a construct (`not`, `(`, `not (`, an `and`/`or` group, a `[` list), the two after it a depth
//! (up to 65,535 levels, far past the language's limit), and the rest is text placed inside
//! the innermost level of a route's condition. Every case runs on a thread with a small stack,
//! so a limit that a large stack would hide is still found.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_dsl::fmt::format;
use switchyard_dsl::{Source, SourceId, parse, render_all};

/// A quarter of the proxy's config-watch thread; sanitizer builds need more than plain ones.
const STACK: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let text = match data {
        [1, construct, hi, lo, rest @ ..] => match std::str::from_utf8(rest) {
            Ok(inner) => nested(*construct, usize::from(*hi) << 8 | usize::from(*lo), inner),
            Err(_) => return,
        },
        _ => match std::str::from_utf8(data) {
            Ok(text) => text.to_string(),
            Err(_) => return,
        },
    };
    let run = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || check(&text));
    match run.map(|t| t.join()) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => panic!("cannot spawn a thread: {e}"),
    }
});

/// A route whose condition nests `construct` `depth` times around `inner`.
fn nested(construct: u8, depth: usize, inner: &str) -> String {
    let (open, close) = match construct % 5 {
        0 => ("not ", ""),
        1 => ("(", ")"),
        2 => ("not (", ")"),
        3 => ("(stream or ", ")"),
        _ => ("[", "]"),
    };
    let mut text = String::with_capacity(depth * (open.len() + close.len()) + inner.len() + 64);
    text.push_str("route deep {\n  when ");
    for _ in 0..depth {
        text.push_str(open);
    }
    text.push_str(if inner.is_empty() { "stream" } else { inner });
    for _ in 0..depth {
        text.push_str(close);
    }
    text.push_str("\n  use p/m\n}\n");
    text
}

fn check(text: &str) {
    let source = Source::new("fuzz.sy", text);
    let file = match parse(SourceId(0), &source) {
        Ok(file) => file,
        Err(diags) => {
            assert!(!diags.is_empty());
            let _ = render_all(&diags, std::slice::from_ref(&source));
            return;
        }
    };
    let once = format(&file, text);
    let again = Source::new("fuzz.sy", once.clone());
    let reparsed = match parse(SourceId(0), &again) {
        Ok(reparsed) => reparsed,
        Err(diags) => panic!(
            "formatted text does not parse:\n{once}\n{}",
            render_all(&diags, std::slice::from_ref(&again))
        ),
    };
    assert_eq!(reparsed, file, "formatting changed the tree:\n{once}");
    let twice = format(&reparsed, &once);
    assert_eq!(twice, once, "formatting is not idempotent");
}
