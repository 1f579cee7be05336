//! Decoding and validation of executor calls exactly as an upstream agent does it
//! (`Http::executor` in `src/slave/http.cpp`, `validateExecutorCall` in
//! `src/common/validation.cpp`). Written independently of the library's driver so that
//! a bug shared by both sides cannot hide itself.

use hyper::StatusCode;
use mesos_executor::{
    proto::{
        check_uuid,
        v1::{TaskState, check_info, executor::Call, executor::call, task_status},
    },
    wire::{ContentType, decode_dynamic, descriptor_pool},
};
use prost::Name;
use prost_reflect::{Cardinality, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};

/// A refused request: the status code and plain-text body the agent would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status.
    pub status: StatusCode,
    /// Plain-text body.
    pub message: String,
}

impl Rejection {
    /// A rejection with the given status and body.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Rejection { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

fn call_descriptor() -> MessageDescriptor {
    descriptor_pool()
        .get_message_by_name(&Call::full_name())
        .expect("the library's descriptor pool describes mesos.v1.executor.Call")
}

/// Decodes a request body as the agent does: exact `Content-Type`, then the body,
/// then every required field (recursively).
pub fn decode_call(content_type: Option<&str>, body: &[u8]) -> Result<(Call, ContentType), Rejection> {
    let Some(content_type) = content_type else {
        return Err(Rejection::bad_request("Expecting 'Content-Type' to be present"));
    };
    let Some(media) = ContentType::from_exact(content_type) else {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting 'Content-Type' of application/json or application/x-protobuf, got '{content_type}'"),
        ));
    };
    let dynamic = match media {
        ContentType::Protobuf => {
            let parse_error = || Rejection::bad_request("Failed to parse body into Call protobuf");
            let dynamic = decode_dynamic(call_descriptor(), body, media).map_err(|_| parse_error())?;
            if !missing_required(&dynamic).is_empty() {
                return Err(parse_error());
            }
            // The generated type decodes the same bytes directly.
            let call = <Call as prost::Message>::decode(body).map_err(|_| parse_error())?;
            return Ok((call, media));
        }
        ContentType::Json => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| Rejection::bad_request(format!("Failed to parse body into JSON: {e}")))?;
            let convert =
                |why: String| Rejection::bad_request(format!("Failed to convert JSON into Call protobuf: {why}"));
            if !value.is_object() {
                return Err(convert("Expecting a JSON object".to_owned()));
            }
            // stout matches proto field names exactly (camelCase keys are ignored) and
            // wants enums by name only.
            let value = stout_view(value, &call_descriptor(), "").map_err(convert)?;
            let json = serde_json::to_vec(&value).map_err(|e| convert(e.to_string()))?;
            let dynamic = decode_dynamic(call_descriptor(), &json, media).map_err(|e| convert(e.to_string()))?;
            let missing = missing_required(&dynamic);
            if !missing.is_empty() {
                return Err(convert(format!("Missing required fields: {}", missing.join(", "))));
            }
            dynamic
        }
        // A media type the library may add later is not one an agent speaks.
        _ => {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Expecting 'Content-Type' of application/json or application/x-protobuf, got '{content_type}'"),
            ));
        }
    };
    let call =
        dynamic.transcode_to::<Call>().map_err(|e| Rejection::bad_request(format!("Failed to decode Call: {e}")))?;
    Ok((call, media))
}

/// Paths of required fields that are absent, recursively (proto2 `required`).
pub fn missing_required(message: &DynamicMessage) -> Vec<String> {
    let mut out = Vec::new();
    walk_required(message, "", &mut out);
    out
}

fn walk_required(message: &DynamicMessage, prefix: &str, out: &mut Vec<String>) {
    for field in message.descriptor().fields() {
        let path = format!("{prefix}{}", field.name());
        if field.cardinality() == Cardinality::Required && !message.has_field(&field) {
            out.push(path);
            continue;
        }
        if !message.has_field(&field) {
            continue;
        }
        match message.get_field(&field).as_ref() {
            Value::Message(inner) => walk_required(inner, &format!("{path}."), out),
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(inner) = item {
                        walk_required(inner, &format!("{path}[{i}]."), out);
                    }
                }
            }
            Value::Map(entries) => {
                for value in entries.values() {
                    if let Value::Message(inner) = value {
                        walk_required(inner, &format!("{path}{{}}."), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The JSON as stout's parser sees it: keys that are not exact proto field names are
/// dropped (recursively), and an enum given as a number is an error.
fn stout_view(
    value: serde_json::Value,
    descriptor: &MessageDescriptor,
    prefix: &str,
) -> Result<serde_json::Value, String> {
    let serde_json::Value::Object(object) = value else { return Ok(value) };
    let mut kept = serde_json::Map::new();
    for (key, value) in object {
        let Some(field) = descriptor.get_field_by_name(&key) else { continue };
        let path = format!("{prefix}{key}");
        let convert = |item: serde_json::Value| -> Result<serde_json::Value, String> {
            match field.kind() {
                Kind::Enum(_) if item.is_number() => {
                    Err(format!("Failed to find enum for '{item}' in field '{path}': enums must be names"))
                }
                Kind::Message(inner) if !field.is_map() => stout_view(item, &inner, &format!("{path}.")),
                _ => Ok(item),
            }
        };
        let value = match value {
            serde_json::Value::Array(items) if field.is_list() => {
                serde_json::Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
            }
            other => convert(other)?,
        };
        kept.insert(key, value);
    }
    Ok(serde_json::Value::Object(kept))
}

/// The agent's semantic checks of a decoded call (reference §3.3). The error is the
/// reason the agent appends to `Failed to validate Executor::Call: `.
pub fn validate(call: &Call) -> Result<(), String> {
    let Some(kind) = call.r#type else {
        return Err("Expecting 'type' to be present".to_owned());
    };
    match call::Type::try_from(kind) {
        Ok(call::Type::Subscribe) if call.subscribe.is_none() => Err("Expecting 'subscribe' to be present".to_owned()),
        Ok(call::Type::Update) => validate_update(call),
        Ok(call::Type::Message) if call.message.is_none() => Err("Expecting 'message' to be present".to_owned()),
        _ => Ok(()),
    }
}

fn validate_update(call: &Call) -> Result<(), String> {
    let Some(update) = &call.update else {
        return Err("Expecting 'update' to be present".to_owned());
    };
    let status = &update.status;
    let Some(uuid) = &status.uuid else {
        return Err("Expecting 'uuid' to be present".to_owned());
    };
    check_uuid(uuid).map_err(|e| format!("Invalid UUID: {e}"))?;
    if let Some(executor_id) = &status.executor_id
        && executor_id.value != call.executor_id.value
    {
        return Err(format!(
            "ExecutorID in Call: {} does not match ExecutorID in TaskStatus: {}",
            call.executor_id.value, executor_id.value
        ));
    }
    if status.source() != task_status::Source::Executor {
        return Err("Received Call from executor with TaskStatus.source != SOURCE_EXECUTOR".to_owned());
    }
    if status.state == TaskState::TaskStaging as i32 {
        return Err("Received TASK_STAGING from executor".to_owned());
    }
    if let Some(check) = &status.check_status {
        let ok = match check.r#type.map(check_info::Type::try_from) {
            Some(Ok(check_info::Type::Command)) => check.command.is_some(),
            Some(Ok(check_info::Type::Http)) => check.http.is_some(),
            Some(Ok(check_info::Type::Tcp)) => check.tcp.is_some(),
            _ => false,
        };
        if !ok {
            return Err("TaskStatus.check_status must have a known type and its matching sub-message".to_owned());
        }
    }
    Ok(())
}

/// The media type of a SUBSCRIBE's event stream (reference §1.3): absent `Accept`
/// means JSON; JSON is tested before protobuf, so q-values do not express preference.
pub fn negotiate_accept(accept: Option<&str>) -> Option<ContentType> {
    let Some(accept) = accept else { return Some(ContentType::Json) };
    let admits = |wanted: &str| {
        let (wanted_type, _) = wanted.split_once('/').unwrap_or((wanted, ""));
        accept.split(',').any(|entry| {
            let mut parts = entry.split(';');
            let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let zero_q = parts.any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0)
            });
            !zero_q && (range == wanted || range == format!("{wanted_type}/*") || range == "*/*")
        })
    };
    if admits("application/json") {
        Some(ContentType::Json)
    } else if admits("application/x-protobuf") {
        Some(ContentType::Protobuf)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation_follows_the_agent() {
        assert_eq!(negotiate_accept(None), Some(ContentType::Json));
        assert_eq!(negotiate_accept(Some("*/*")), Some(ContentType::Json));
        assert_eq!(negotiate_accept(Some("application/x-protobuf")), Some(ContentType::Protobuf));
        assert_eq!(negotiate_accept(Some("application/x-protobuf, application/json;q=0.1")), Some(ContentType::Json));
        assert_eq!(negotiate_accept(Some("application/json;q=0, application/*")), Some(ContentType::Json));
        assert_eq!(negotiate_accept(Some("application/json;q=0, application/x-protobuf")), Some(ContentType::Protobuf));
        assert_eq!(negotiate_accept(Some("application/recordio")), None);
        assert_eq!(negotiate_accept(Some("text/plain")), None);
    }
}
