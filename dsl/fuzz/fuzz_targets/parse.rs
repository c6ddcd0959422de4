//! Fuzz target: arbitrary UTF-8 through `parse`, `fmt` and `render`.
//!
//! Parsing must never panic. Diagnostics must render. When the text parses, its formatted form
//! must parse back to an equal tree (spans compare equal by design, comments included) and
//! formatting must be idempotent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_dsl::fmt::format;
use switchyard_dsl::{Source, SourceId, parse, render_all};

fuzz_target!(|text: &str| {
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
});
