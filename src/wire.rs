//! Calls and events on the wire: protobuf (`application/x-protobuf`) or the agent's
//! JSON mapping (`application/json`: proto field names, enums by name, bytes as
//! padded base64, 64-bit integers as bare numbers; reference §5). JSON goes through
//! prost-reflect over the descriptors of our own proto files.

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};

use crate::proto::DESCRIPTOR_SET;

/// A media type the agent accepts for calls and can stream events in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ContentType {
    /// `application/x-protobuf`, the upstream library's default and the fastest.
    #[default]
    Protobuf,
    /// `application/json`, in the agent's JSON mapping.
    Json,
}

impl ContentType {
    /// The exact header value. The agent compares `Content-Type` byte for byte, so
    /// no parameters such as `; charset=utf-8` may be added (reference §1.2).
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentType::Protobuf => "application/x-protobuf",
            ContentType::Json => "application/json",
        }
    }

    /// Parses a `Content-Type` header value with the agent's exact-match rule.
    pub fn from_exact(value: &str) -> Option<Self> {
        match value {
            "application/x-protobuf" => Some(ContentType::Protobuf),
            "application/json" => Some(ContentType::Json),
            _ => None,
        }
    }
}

impl std::fmt::Display for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The bytes are not a valid protobuf encoding of the message.
    #[error("failed to decode {message} from protobuf: {source}")]
    Protobuf {
        /// Full protobuf name of the expected message.
        message: String,
        /// What prost reported.
        #[source]
        source: prost::DecodeError,
    },
    /// The bytes are not JSON, or not the JSON mapping of the message.
    #[error("failed to decode {message} from JSON: {source}")]
    Json {
        /// Full protobuf name of the expected message.
        message: String,
        /// What the JSON mapping reported (names the offending field).
        #[source]
        source: serde_json::Error,
    },
    /// Our descriptors and generated code disagree; a build bug, never input.
    #[error("no descriptor for {0}")]
    NoDescriptor(String),
}

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    // The descriptor set is produced by our own build script from our own protos;
    // failing to decode it is a build defect, not bad input.
    DescriptorPool::decode(DESCRIPTOR_SET).expect("descriptor set written by build.rs decodes")
});

/// The descriptors of `mesos.v1` and `mesos.v1.executor`, for reflection.
pub fn descriptor_pool() -> &'static DescriptorPool {
    &POOL
}

fn descriptor<M: Name>() -> Result<prost_reflect::MessageDescriptor, WireError> {
    let name = M::full_name();
    POOL.get_message_by_name(&name).ok_or(WireError::NoDescriptor(name))
}

/// Options that write JSON as the agent's stout `jsonify` does.
fn json_out() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false)
}

/// Newer agents may send fields we do not know: ignore them, as upstream does.
fn json_in() -> DeserializeOptions {
    DeserializeOptions::new().deny_unknown_fields(false)
}

/// Encodes `msg` in the given media type.
///
/// ```
/// use mesos_executor::{ContentType, proto::v1::TaskStatus, wire};
/// let json = wire::encode(&TaskStatus::running("t1"), ContentType::Json)?;
/// assert_eq!(String::from_utf8(json).unwrap(), r#"{"task_id":{"value":"t1"},"state":"TASK_RUNNING"}"#);
/// # Ok::<(), mesos_executor::WireError>(())
/// ```
///
/// # Errors
/// Only [`WireError::NoDescriptor`], which signals a build defect.
pub fn encode<M: Message + Name>(msg: &M, content_type: ContentType) -> Result<Vec<u8>, WireError> {
    match content_type {
        ContentType::Protobuf => Ok(msg.encode_to_vec()),
        ContentType::Json => {
            let dynamic = to_dynamic(msg)?;
            let mut out = Vec::with_capacity(256);
            let mut serializer = serde_json::Serializer::new(&mut out);
            dynamic
                .serialize_with_options(&mut serializer, &json_out())
                .map_err(|source| WireError::Json { message: M::full_name(), source })?;
            Ok(out)
        }
    }
}

/// Decodes a message of type `M` from `bytes` in the given media type.
///
/// Unknown fields and unknown enum numbers from a newer peer are tolerated.
///
/// ```
/// use mesos_executor::{ContentType, proto::v1::{TaskState, TaskStatus}, wire};
/// let bytes = wire::encode(&TaskStatus::killed("t1"), ContentType::Protobuf)?;
/// let status: TaskStatus = wire::decode(&bytes, ContentType::Protobuf)?;
/// assert_eq!(status.state(), TaskState::TaskKilled);
/// assert!(wire::decode::<TaskStatus>(b"{not json", ContentType::Json).is_err());
/// # Ok::<(), mesos_executor::WireError>(())
/// ```
///
/// # Errors
/// [`WireError::Protobuf`] or [`WireError::Json`] naming what was malformed.
pub fn decode<M: Message + Name + Default>(bytes: &[u8], content_type: ContentType) -> Result<M, WireError> {
    match content_type {
        ContentType::Protobuf => {
            M::decode(bytes).map_err(|source| WireError::Protobuf { message: M::full_name(), source })
        }
        ContentType::Json => {
            let dynamic = decode_dynamic_json(descriptor::<M>()?, bytes)?;
            dynamic.transcode_to::<M>().map_err(|source| WireError::Protobuf { message: M::full_name(), source })
        }
    }
}

/// Decodes `bytes` into a reflective message, e.g. to check which fields are present.
///
/// # Errors
/// As [`decode`].
pub fn decode_dynamic(
    descriptor: prost_reflect::MessageDescriptor,
    bytes: &[u8],
    content_type: ContentType,
) -> Result<DynamicMessage, WireError> {
    match content_type {
        ContentType::Protobuf => DynamicMessage::decode(descriptor.clone(), bytes)
            .map_err(|source| WireError::Protobuf { message: descriptor.full_name().to_owned(), source }),
        ContentType::Json => decode_dynamic_json(descriptor, bytes),
    }
}

fn decode_dynamic_json(
    descriptor: prost_reflect::MessageDescriptor,
    bytes: &[u8],
) -> Result<DynamicMessage, WireError> {
    let name = descriptor.full_name().to_owned();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let dynamic = DynamicMessage::deserialize_with_options(descriptor, &mut de, &json_in())
        .map_err(|source| WireError::Json { message: name.clone(), source })?;
    de.end().map_err(|source| WireError::Json { message: name, source })?;
    Ok(dynamic)
}

/// Converts a generated message into a reflective one.
///
/// # Errors
/// Only [`WireError::NoDescriptor`], which signals a build defect.
pub fn to_dynamic<M: Message + Name>(msg: &M) -> Result<DynamicMessage, WireError> {
    let bytes = msg.encode_to_vec();
    DynamicMessage::decode(descriptor::<M>()?, bytes.as_slice())
        .map_err(|source| WireError::Protobuf { message: M::full_name(), source })
}

/// Encodes `msg` as a `serde_json::Value` in the agent's JSON mapping (for
/// transcripts and for embedding CommandInfo in `TaskInfo.data`).
///
/// # Errors
/// Only [`WireError::NoDescriptor`], which signals a build defect.
pub fn to_json_value<M: Message + Name>(msg: &M) -> Result<serde_json::Value, WireError> {
    let dynamic = to_dynamic(msg)?;
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &json_out())
        .map_err(|source| WireError::Json { message: M::full_name(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_is_matched_exactly() {
        assert_eq!(ContentType::from_exact("application/json"), Some(ContentType::Json));
        assert_eq!(ContentType::from_exact("application/x-protobuf"), Some(ContentType::Protobuf));
        assert_eq!(ContentType::from_exact("application/json; charset=utf-8"), None);
        assert_eq!(ContentType::from_exact("Application/JSON"), None);
    }

    #[test]
    fn descriptors_cover_every_generated_message() {
        use crate::proto::v1::{
            TaskInfo, TaskStatus,
            executor::{Call, Event},
        };
        assert!(descriptor::<Call>().is_ok());
        assert!(descriptor::<Event>().is_ok());
        assert!(descriptor::<TaskInfo>().is_ok());
        assert!(descriptor::<TaskStatus>().is_ok());
    }
}
