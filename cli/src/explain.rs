//! `switchyard explain`: what would happen to one request, and why.

use std::path::PathBuf;

use clap::Args;
use switchyard_dsl::RequestView;

use crate::check::load_and_compile;
use crate::{EXIT_ERRORS, EXIT_NO_ROUTE, EXIT_OK};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// YAML files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The `model` field of the request.
    #[arg(long)]
    model: String,
    /// A request header, `name=value`; repeat for more.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The client key id.
    #[arg(long)]
    key: Option<String>,
    /// The client key's team.
    #[arg(long)]
    team: Option<String>,
    /// The client key's user.
    #[arg(long)]
    user: Option<String>,
    /// Estimated prompt tokens.
    #[arg(long, default_value_t = 0)]
    prompt_tokens: u64,
    /// The request asks for a stream.
    #[arg(long)]
    stream: bool,
    /// The random draw in [0, 1) that picks a split arm (0.5 unless given).
    #[arg(long, default_value_t = 0.5, value_parser = parse_draw)]
    draw: f64,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, found `{text}`"))?;
    Ok((name.trim().to_ascii_lowercase(), value.to_owned()))
}

fn parse_draw(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(d) if (0.0..1.0).contains(&d) => Ok(d),
        _ => Err(format!("expected a number in [0, 1), found `{text}`")),
    }
}

pub(crate) fn run(args: &ExplainArgs) -> anyhow::Result<u8> {
    let Some((_, compiled)) = load_and_compile(&args.paths)? else {
        return Ok(EXIT_ERRORS);
    };
    let Some(snapshot) = &compiled.snapshot else {
        return Ok(EXIT_ERRORS);
    };
    let headers: Vec<(&str, &str)> = args
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request = RequestView {
        model: &args.model,
        headers: &headers,
        key: args.key.as_deref(),
        team: args.team.as_deref(),
        user: args.user.as_deref(),
        prompt_tokens: args.prompt_tokens,
        stream: args.stream,
    };
    let explanation = switchyard_dsl::explain::explain(snapshot, &request, args.draw);
    print!("{explanation}");
    Ok(if explanation.route.is_some() {
        EXIT_OK
    } else {
        EXIT_NO_ROUTE
    })
}
