//! Entry points for the fuzz targets (`fuzz/`): arbitrary bytes as the agent's answer
//! to a call and to SUBSCRIBE, through the same hyper client and RecordIO decoder the
//! driver uses. Not part of the API.

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::transport::{Endpoint, TransportError};
use crate::{
    ContentType,
    env::{AgentEndpoint, ExecutorEnv},
    proto::v1::executor::Event,
    wire,
};

fn endpoint() -> Option<Endpoint> {
    let agent = AgentEndpoint { process_id: "slave(1)".into(), host: "127.0.0.1".into(), port: 5051 };
    let env = ExecutorEnv::new("framework", "executor", agent);
    Endpoint::new(&env, ContentType::Protobuf, std::time::Duration::from_secs(10)).ok()
}

/// Runs `exchange` against an agent whose whole answer is `answer`, then end of file.
fn with_agent<T>(answer: &[u8], exchange: impl AsyncFnOnce(Endpoint, super::transport::BoxIo) -> T) -> Option<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let endpoint = endpoint()?;
    let answer = answer.to_vec();
    runtime.block_on(async move {
        let (client, mut agent) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            // Answer once the request (head and its 2-byte body) is in, as an agent does.
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while request.windows(4).position(|w| w == b"\r\n\r\n").is_none_or(|i| request.len() < i + 6) {
                match tokio::io::AsyncReadExt::read(&mut agent, &mut chunk).await {
                    Ok(n) if n > 0 => request.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let _ = agent.write_all(&answer).await;
            let _ = agent.shutdown().await;
            // Hold the agent's end until the client is done reading, so EOF is the
            // client's to see; then drop it.
            let mut sink = [0u8; 4096];
            while matches!(tokio::io::AsyncReadExt::read(&mut agent, &mut sink).await, Ok(n) if n > 0) {}
        });
        let outcome = exchange(endpoint, Box::new(client)).await;
        writer.abort();
        Some(outcome)
    })
}

/// The agent answers an UPDATE with `answer`: `Ok` only for a 202.
pub fn call_answer(answer: &[u8]) -> Option<Result<(), TransportError>> {
    with_agent(answer, async |endpoint, io| {
        let mut connection = endpoint.calls_on(io).await?;
        endpoint.post(&mut connection, "UPDATE", Bytes::from_static(b"\x08\x03")).await
    })
}

/// The agent answers SUBSCRIBE with `answer`: the events decoded before the stream
/// ended or broke, or the error that refused the subscription.
pub fn subscribe_answer(answer: &[u8]) -> Option<Result<Vec<Event>, TransportError>> {
    with_agent(answer, async |endpoint, io| {
        let mut stream = endpoint.subscribe_on(io, Bytes::from_static(b"\x08\x01"), 64 * 1024).await?;
        let mut events = Vec::new();
        while let Some(Ok(record)) = stream.frames.next().await {
            if let Ok(event) = wire::decode::<Event>(&record, stream.media) {
                events.push(event);
            }
        }
        Ok(events)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_202_is_accepted_and_hostile_answers_are_errors_that_say_why() {
        assert!(matches!(call_answer(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"), Some(Ok(()))));
        let mut long_body = b"HTTP/1.1 503 Nope\r\nContent-Length: 70000\r\n\r\n".to_vec();
        long_body.resize(long_body.len() + 70_000, b'x');
        let cases: [(&[u8], &str); 4] = [
            (b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nab", "overflow"),
            (b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n", "chunk size"),
            (b"SSH-2.0-OpenSSH_9.6 2x2 Whatever\r\n\r\n", "invalid HTTP"),
            (&long_body, "length limit"),
        ];
        for (answer, says) in cases {
            let error = call_answer(answer).unwrap().unwrap_err().to_string();
            assert!(error.contains(says), "{error:?} should say {says:?}");
        }
        let mut head = b"HTTP/1.1 202 Accepted\r\nX-Filler: ".to_vec();
        head.resize(head.len() + 70_000, b'a');
        let error = call_answer(&head).unwrap().unwrap_err().to_string();
        assert!(error.contains("too large"), "{error}");
    }

    #[test]
    fn a_subscribe_answer_yields_events_or_a_clear_error() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n2\n\x08\x01\r\n0\r\n\r\n";
        assert_eq!(subscribe_answer(ok).unwrap().unwrap().len(), 1);
        let refused = subscribe_answer(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope").unwrap();
        assert!(refused.unwrap_err().to_string().contains("401"));
    }
}
