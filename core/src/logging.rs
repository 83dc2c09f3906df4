//! Log set-up: one JSON object per line in Lambda (fields at the top level, so CloudWatch Logs
//! Insights can filter on `outcome`, `reason`, `user`, ...), readable lines on a terminal.
//! Nothing the engine logs holds a private key, a token or a whole phone number.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Lines on stdout for Lambda (CloudWatch): JSON objects, or plain text when `LOG_FORMAT` is
/// `text` (the template sets `json`; any other value is JSON). Safe to call twice.
pub fn init_lambda() {
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    if format.trim().eq_ignore_ascii_case("text") {
        let _ = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .with_env_filter(filter())
            .try_init();
        return;
    }
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = lambda_json(filter(), std::io::stdout).try_init();
}

/// The subscriber of Lambda's JSON lines, writing to `writer` (stdout in Lambda; tests capture
/// the same lines to scan them).
pub fn lambda_json<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// Human-readable lines on stderr for the command-line tool (level from `RUST_LOG`, default warn).
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_env_filter(filter)
        .try_init();
}
