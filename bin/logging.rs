//! The daemon's log, on stderr, for an operator: the human format (the default) or one
//! JSON object per line (`--log_format=json`), filtered by `--log_filter` (or `RUST_LOG`,
//! which wins; default `info`).
//!
//! The executor's ids are long (a framework id and an executor id are 40 to 80
//! characters) and the same on every line of one executor's log, which the agent keeps
//! in that executor's own sandbox. So the human format names them once, on the
//! `starting` line, and its lines carry time, level, message and the event's own fields,
//! never the spans (the library's driver span would put both ids on every line). The JSON
//! format keeps every span: [`executor_span`], entered for the life of the runtime's
//! thread, gives every line `span.framework_id` and `span.executor_id`, as the driver's
//! span does for its own lines.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::Writer,
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

use crate::settings::LogFormat;

/// Installs the global subscriber for `format`, with `filter` (`--log_filter`, or
/// `RUST_LOG`); a filter that does not parse is `info`, as a bad `RUST_LOG` always was.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(false).event_format(Short).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The span every line of the daemon is logged in (entered on the runtime's thread for
/// its whole life): the executor's ids, as fields.
pub fn executor_span(framework_id: &str, executor_id: &str) -> tracing::Span {
    tracing::info_span!("executor", framework_id, executor_id)
}

/// The human format: `<time> <LEVEL> <message> <field>=<value>...`, without targets or
/// spans.
struct Short;

impl<S, N> FormatEvent<S, N> for Short
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        write!(writer, " {:>5} ", event.metadata().level())?;
        let mut fields = String::new();
        ctx.field_format().format_fields(Writer::new(&mut fields), event)?;
        writer.write_str(&one_line(&fields, MAX_FIELDS))?;
        writeln!(writer)
    }
}

/// Most bytes of a human line's message and fields: a value from the agent (a task id
/// may be megabytes in a hostile record) cannot flood the log.
const MAX_FIELDS: usize = 2048;

/// `text` as one line of at most about `max` bytes: control characters escaped (a task
/// id with a newline must not start a line of its own choosing), and the rest cut,
/// saying how much.
fn one_line(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max && !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut line = String::with_capacity(max.min(text.len()) + 32);
    for (at, c) in text.char_indices() {
        if line.len() >= max {
            line.push_str(&format!("... ({} bytes cut)", text.len() - at));
            break;
        }
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line.into()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_line_is_one_line_of_bounded_length() {
        assert_eq!(one_line("task_id=web", 64), "task_id=web");
        assert_eq!(one_line("t1\nERROR forged", 64), "t1\\nERROR forged");
        assert_eq!(one_line("a\tb\u{1b}[31m", 64), "a\\tb\\u{1b}[31m");
        let long = "h".repeat(10_000);
        let cut = one_line(&long, 100);
        assert!(cut.len() < 140 && cut.ends_with("(9900 bytes cut)"), "{cut}");
        assert_eq!(one_line(&"é".repeat(100), 10).chars().filter(|c| *c == 'é').count(), 5);
    }
}
