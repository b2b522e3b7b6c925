//! A WASI HTTP component (the `wasi:http/proxy` world): answers
//! `hello from wasm: METHOD PATH (host HOST)`; `GET /fetch/HOST:PORT/PATH`
//! fetches `http://HOST:PORT/PATH` itself and answers what it got (or why
//! it got nothing), so tests see outbound HTTP and its egress policy.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Service;

fn answer(out: ResponseOutparam, status: u16, text: String) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let body = response.body().expect("a response body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("a body stream");
    for chunk in text.as_bytes().chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("written");
    }
    drop(stream);
    OutgoingBody::finish(body, None).expect("finished");
}

/// GET `http://AUTHORITY/PATH`: the status and body, or the error.
fn fetch(authority: &str, path: &str) -> Result<String, String> {
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    req.set_authority(Some(authority)).map_err(|_| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let resp = pending
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.consume().map_err(|_| "no body")?;
    let stream = body.stream().map_err(|_| "no stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(65536) {
            Ok(chunk) => bytes.extend(chunk),
            Err(_) => break,
        }
    }
    Ok(format!("{status} {}", String::from_utf8_lossy(&bytes)))
}

impl wasi::exports::http::incoming_handler::Guest for Service {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        if let Some(rest) = path.strip_prefix("/fetch/") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            return match fetch(authority, &format!("/{path}")) {
                Ok(text) => answer(out, 200, format!("fetched: {text}\n")),
                Err(why) => answer(out, 502, format!("not fetched: {why}\n")),
            };
        }
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Post => "POST".to_string(),
            other => format!("{other:?}"),
        };
        // The host's name arrives as the authority (not a header).
        let host = request.authority().unwrap_or_default();
        println!("served {method} {path}");
        answer(out, 200, format!("hello from wasm: {method} {path} (host {host})\n"));
    }
}

wasi::http::proxy::export!(Service);
