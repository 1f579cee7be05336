//! The agent's executor endpoint over HTTP/1.1: routing, authentication, method and
//! media-type checks in the order upstream applies them (reference §1.5), then the
//! decoded call goes to the [`Agent`].

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use mesos_executor::proto::v1::executor::call;

use crate::{
    agent::{Agent, Phase, calls::Reply},
    stream::EventBody,
    transcript::Record,
    validate::{Rejection, decode_call, negotiate_accept, validate},
};

/// A response: an event stream or a plain-text body.
pub type ResponseBody = Either<EventBody, Full<Bytes>>;

/// Largest call body accepted (an upstream agent has no small limit either).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The paths that reach the executor API: with the agent's libprocess id (also
/// percent-encoded) or, over TCP, without it (reference §1.1).
pub fn is_executor_path(path: &str) -> bool {
    matches!(path, "/slave(1)/api/v1/executor" | "/slave%281%29/api/v1/executor" | "/api/v1/executor")
}

/// How a request reached the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// TCP (plain or TLS).
    Tcp,
    /// The executor unix socket: only `/slave(N)/api/v1/executor` is allowed (403 else).
    UnixSocket,
}

/// Serves one request.
pub async fn handle(agent: Agent, request: Request<Incoming>, via: Via) -> Result<Response<ResponseBody>, Infallible> {
    Ok(match route(&agent, request, via).await {
        Ok(response) => response,
        Err(rejection) => {
            agent.with_state(|s| {
                let record = Record::Refused { status: rejection.status.as_u16(), message: rejection.message.clone() };
                agent.record(s, record);
            });
            let mut response = text(rejection.status, rejection.message.clone());
            if rejection.status == StatusCode::UNAUTHORIZED
                && let Ok(value) = header::HeaderValue::from_str(&rejection.message)
            {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
    })
}

async fn route(agent: &Agent, request: Request<Incoming>, via: Via) -> Result<Response<ResponseBody>, Rejection> {
    if via == Via::UnixSocket && request.uri().path() == "/api/v1/executor" {
        // On the socket the `slave(1)` prefix is mandatory (reference §1.8).
        return Err(Rejection::new(StatusCode::FORBIDDEN, "Only /slave(1)/api/v1/executor is served on this socket"));
    }
    if !is_executor_path(request.uri().path()) {
        return Err(Rejection::new(StatusCode::NOT_FOUND, format!("No route for {}", request.uri().path())));
    }
    let forced = agent.with_state(|s| match &mut s.forced_answer {
        Some((status, count)) if *count > 0 => {
            *count -= 1;
            Some(*status)
        }
        _ => None,
    });
    if let Some(status) = forced.and_then(|s| StatusCode::from_u16(s).ok()) {
        return Err(Rejection::new(status, format!("fault injected: {status}")));
    }
    if agent.inspect(|s| s.blackhole) {
        // A host that stopped answering: the request is never answered.
        std::future::pending::<()>().await;
    }
    if let Some(expected) = &agent.config().auth_token {
        authenticate(request.headers().get(header::AUTHORIZATION), expected)?;
    }
    if matches!(agent.inspect(|s| s.phase), Phase::Recovering | Phase::Down) {
        return Err(Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "Agent has not finished recovery"));
    }
    if request.method() != Method::POST {
        let mut response =
            text(StatusCode::METHOD_NOT_ALLOWED, format!("Expecting POST, received '{}'", request.method()));
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        agent.with_state(|s| agent.record(s, Record::Refused { status: 405, message: "method not allowed".into() }));
        return Ok(response);
    }
    let content_type =
        request.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>").to_owned());
    let accept = request.headers().get(header::ACCEPT).map(|v| v.to_str().unwrap_or("").to_owned());
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, format!("Failed to read request body: {e}")))?
        .to_bytes();

    let (call, media) = decode_call(content_type.as_deref(), &body)?;
    if let Err(reason) = validate(&call) {
        return Err(Rejection::new(StatusCode::BAD_REQUEST, format!("Failed to validate Executor::Call: {reason}")));
    }
    let call_fault_armed =
        agent.inspect(|s| matches!(s.bad_http, Some((_, crate::agent::HttpTarget::Call, n)) if n > 0));
    if call.r#type() != call::Type::Subscribe && call_fault_armed {
        // A malformed answer for calls is armed, but this call came on a connection made
        // before: send it to a new connection, where the fault is served.
        let mut response = text(StatusCode::SERVICE_UNAVAILABLE, "fault armed: reconnect".to_owned());
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        return Ok(response);
    }
    let stream_media = if call.r#type() == call::Type::Subscribe {
        negotiate_accept(accept.as_deref()).ok_or_else(|| {
            Rejection::new(
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Accept' to allow application/json or application/x-protobuf",
            )
        })?
    } else {
        media
    };
    Ok(match agent.dispatch(call, media, stream_media) {
        Reply::Stream(body, media) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, media.as_str())
            .body(Either::Left(body))
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response")),
        Reply::Status(status, message) => text(status, message),
    })
}

/// libprocess's JWT authenticator for the `mesos-agent-executor` realm, reduced to a
/// token comparison (reference §1.7).
fn authenticate(header: Option<&header::HeaderValue>, expected: &str) -> Result<(), Rejection> {
    let presented = header.and_then(|h| h.to_str().ok()).map(str::to_owned);
    let ok = presented.as_deref().and_then(|h| h.strip_prefix("Bearer ")) == Some(expected);
    if ok {
        return Ok(());
    }
    let mut challenge = r#"Bearer realm="mesos-agent-executor""#.to_owned();
    if presented.is_some() {
        challenge.push_str(r#", error="invalid_token", error_description="token does not match""#);
    }
    Err(Rejection::new(StatusCode::UNAUTHORIZED, challenge))
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response
}
