//! The OpenAI-compatible provider over a real socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strata_agents::{
    AgentError, AgentKind, AgentOutput, DeltaSink, LlmProvider, OpenAiConfig, OpenAiProvider,
    run_agent,
};
use tokio_util::sync::CancellationToken;

use crate::support::{
    KEY, MockServer, Piece, Reply, adidas, assert_secret_free, brand_voice_answer, closing_events,
    config, content_event, drain, nike, split, stream_of,
};

async fn run(
    provider: &dyn LlmProvider,
    kind: AgentKind,
) -> Result<strata_agents::AgentResult, AgentError> {
    run_agent(
        provider,
        kind,
        &nike(),
        None,
        &DeltaSink::none(),
        &CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn a_streamed_run_sends_the_documented_request_and_returns_validated_output() {
    let answer = brand_voice_answer();
    let server = MockServer::start(vec![stream_of(&answer, 5)]).await;
    let provider = server.provider();
    let (sink, mut rx) = DeltaSink::channel(64);

    let result = run_agent(
        &provider,
        AgentKind::BrandVoice,
        &nike(),
        Some("gpt-test-mini"),
        &sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(request.body["model"], json!("gpt-test-mini"));
    assert_eq!(request.body["stream"], json!(true));
    assert_eq!(request.body["stream_options"]["include_usage"], json!(true));
    assert!(request.body["max_tokens"].as_u64().is_some());
    assert!(request.body["temperature"].as_f64().is_some());
    assert!(request.body.get("offline_draft").is_none());
    let messages = request.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], json!("system"));
    assert_eq!(messages[1]["role"], json!("user"));
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("\"sample_messages\"")
    );

    assert_eq!(drain(&mut rx), split(&answer, 5), "deltas arrive in order");
    assert_eq!(result.kind, AgentKind::BrandVoice);
    assert_eq!(result.version, 1);
    assert_eq!(result.value["version"], json!(1));
    assert_eq!(result.value["kind"], json!("BRAND_VOICE"));
    assert_eq!(result.value["tone"], json!(["bold", "inspiring"]));
    assert!(matches!(result.output, AgentOutput::BrandVoice(_)));
    assert_eq!(result.model, "test-model-2026-01-01");
    assert_eq!(result.usage.prompt_tokens, 321);
    assert_eq!(result.usage.completion_tokens, 123);
    assert!(!result.usage.estimated);
}

#[tokio::test]
async fn a_prompt_holds_only_its_own_clients_data() {
    let server = MockServer::start(vec![
        stream_of(&brand_voice_answer(), 3),
        stream_of(&brand_voice_answer(), 3),
    ])
    .await;
    let provider = server.provider();
    let cancel = CancellationToken::new();
    for context in [nike(), adidas()] {
        run_agent(
            &provider,
            AgentKind::BrandVoice,
            &context,
            None,
            &DeltaSink::none(),
            &cancel,
        )
        .await
        .unwrap();
    }

    let requests = server.requests();
    let nike_prompt = requests[0].prompt().to_lowercase();
    let adidas_prompt = requests[1].prompt().to_lowercase();
    for own in [
        "nike",
        "just do it 2026",
        "just do it",
        "marathon maya",
        "injuries from worn shoes",
        "focus on the spring season",
    ] {
        assert!(nike_prompt.contains(own), "nike's prompt lacks {own:?}");
    }
    for other in [
        "adidas",
        "impossible",
        "streetwear sam",
        "tiktok",
        "originals heritage",
    ] {
        assert!(
            !nike_prompt.contains(other),
            "nike's prompt holds {other:?}"
        );
        assert!(
            adidas_prompt.contains(other),
            "adidas' prompt lacks {other:?}"
        );
    }
    for other in ["nike", "marathon maya", "strava", "spring season"] {
        assert!(
            !adidas_prompt.contains(other),
            "adidas' prompt holds {other:?}"
        );
    }
    assert_eq!(requests[0].body["model"], json!("test-model"));
}

#[tokio::test]
async fn events_split_across_reads_with_crlf_and_keep_alives_are_reassembled() {
    let answer = format!("```json\n{}\n```", brand_voice_answer());
    let mut text = String::from(": keep-alive\r\n\r\n");
    for part in split(&answer, 4) {
        text.push_str(&content_event(&part).replace('\n', "\r\n"));
        text.push_str(": ping\r\n\r\n");
    }
    for event in closing_events(10, 20) {
        text.push_str(&event.replace('\n', "\r\n"));
    }
    let pieces = text
        .as_bytes()
        .chunks(7)
        .map(|c| Piece::Bytes(String::from_utf8_lossy(c).into_owned()))
        .collect();
    let server = MockServer::start(vec![Reply::Sse(pieces)]).await;

    let result = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap();

    assert_eq!(
        result.value["do"],
        json!(["Speak to the athlete in everyone"])
    );
    assert_eq!(result.usage.completion_tokens, 20);
}

#[tokio::test]
async fn a_non_streaming_json_answer_is_accepted() {
    let server = MockServer::start(vec![Reply::Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": brand_voice_answer()},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 50, "completion_tokens": 40, "total_tokens": 90}
    }))])
    .await;
    let (sink, mut rx) = DeltaSink::channel(8);

    let result = run_agent(
        &server.provider(),
        AgentKind::BrandVoice,
        &nike(),
        None,
        &sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!(result.usage.prompt_tokens, 50);
    assert_eq!(drain(&mut rx).concat(), brand_voice_answer());
}

#[tokio::test]
async fn a_provider_that_is_down_is_unavailable_after_retries() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let provider = OpenAiProvider::new(config(&format!("http://127.0.0.1:{port}/v1"))).unwrap();

    let error = run(&provider, AgentKind::BrandVoice).await.unwrap_err();

    assert!(matches!(error, AgentError::Unavailable { .. }), "{error:?}");
    assert_eq!(error.code(), "PROVIDER_UNAVAILABLE");
    assert!(error.is_transient());
    assert_secret_free(&error);
}

#[tokio::test]
async fn connections_dropped_before_an_answer_are_retried_then_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let provider = OpenAiProvider::new(config(&format!("http://127.0.0.1:{port}/v1"))).unwrap();

    let error = run(&provider, AgentKind::BrandVoice).await.unwrap_err();

    assert!(matches!(error, AgentError::Unavailable { .. }), "{error:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "one attempt and two retries"
    );
    assert_secret_free(&error);
}

#[tokio::test]
async fn server_errors_are_retried_until_the_provider_succeeds() {
    let server = MockServer::start(vec![
        Reply::Status {
            status: 500,
            headers: vec![],
            body: "boom".to_owned(),
        },
        Reply::Status {
            status: 502,
            headers: vec![],
            body: "bad gateway".to_owned(),
        },
        stream_of(&brand_voice_answer(), 2),
    ])
    .await;

    let result = run(&server.provider(), AgentKind::BrandVoice).await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn retries_stop_after_max_retries_with_the_last_status() {
    let busy = || Reply::Status {
        status: 503,
        headers: vec![],
        body: "{\"error\":{\"message\":\"overloaded\"}}".to_owned(),
    };
    let server = MockServer::start(vec![busy(), busy(), busy(), busy()]).await;

    let error = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap_err();

    assert_eq!(server.requests().len(), 3, "one attempt and two retries");
    assert!(
        matches!(&error, AgentError::HttpStatus { status: 503, body } if body.contains("overloaded")),
        "{error:?}"
    );
    assert_eq!(error.code(), "PROVIDER_HTTP_STATUS");
}

#[tokio::test]
async fn a_429_with_retry_after_waits_then_succeeds() {
    let server = MockServer::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "1".to_owned())],
            body: "slow down".to_owned(),
        },
        stream_of(&brand_voice_answer(), 2),
    ])
    .await;
    let started = Instant::now();

    let result = run(&server.provider(), AgentKind::BrandVoice).await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After was not honoured: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_asking_for_a_wait_beyond_the_longest_backoff_fails_at_once() {
    let server = MockServer::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "120".to_owned())],
            body: "quota window closed".to_owned(),
        },
        stream_of(&brand_voice_answer(), 2),
    ])
    .await;

    let error = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap_err();

    assert_eq!(
        server.requests().len(),
        1,
        "it retried before the wait asked for"
    );
    let AgentError::HttpStatus { status, body } = &error else {
        panic!("expected an HTTP status error, got {error:?}");
    };
    assert_eq!(*status, 429);
    assert!(body.contains("quota window closed"), "{body}");
    assert!(body.contains("retry in 120 s"), "{body}");
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_is_retried() {
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    let server = MockServer::start(vec![
        Reply::Status {
            status: 429,
            headers: vec![(
                "retry-after",
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )],
            body: "slow down".to_owned(),
        },
        stream_of(&brand_voice_answer(), 2),
    ])
    .await;

    // A backoff of its own would be half a minute or more: the run ends
    // in time only if the retry follows the date.
    let provider = server.provider_with(|c| {
        c.initial_backoff = Duration::from_secs(60);
        c.max_backoff = Duration::from_secs(60);
    });
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        run(&provider, AgentKind::BrandVoice),
    )
    .await
    .expect("the retry did not follow the date");

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_echo_the_key() {
    let server = MockServer::start(vec![Reply::EchoAuthorization, Reply::EchoAuthorization]).await;

    let error = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap_err();

    assert_eq!(server.requests().len(), 1);
    let AgentError::HttpStatus { status, body } = &error else {
        panic!("expected an HTTP status error, got {error:?}");
    };
    assert_eq!(*status, 401);
    assert!(body.contains("Incorrect API key provided"), "{body}");
    assert!(body.contains("[redacted]"), "{body}");
    assert!(!error.is_transient());
    assert_secret_free(&error);
    assert!(!format!("{:?}", server.provider()).contains(KEY));
}

#[tokio::test]
async fn a_response_that_does_not_start_in_time_is_a_timeout() {
    let server = MockServer::start(vec![Reply::Delayed(
        Duration::from_secs(5),
        Box::new(stream_of(&brand_voice_answer(), 2)),
    )])
    .await;
    let provider = server.provider_with(|c| c.request_timeout = Duration::from_millis(200));

    let error = run(&provider, AgentKind::BrandVoice).await.unwrap_err();

    assert!(matches!(error, AgentError::Timeout { .. }), "{error:?}");
    assert_eq!(error.code(), "PROVIDER_TIMEOUT");
    assert_eq!(server.requests().len(), 1, "a timeout is not retried");
    assert_secret_free(&error);
}

#[tokio::test]
async fn a_stream_that_stalls_midway_is_a_stall_timeout_and_is_not_retried() {
    let answer = brand_voice_answer();
    let parts = split(&answer, 4);
    let server = MockServer::start(vec![
        Reply::Sse(vec![
            Piece::Bytes(content_event(&parts[0])),
            // Slow but alive: shorter than the stall timeout.
            Piece::Wait(Duration::from_millis(20)),
            Piece::Bytes(content_event(&parts[1])),
            Piece::Hang,
        ]),
        stream_of(&answer, 2),
    ])
    .await;
    let provider = server.provider_with(|c| c.stall_timeout = Duration::from_millis(400));
    let (sink, mut rx) = DeltaSink::channel(16);

    let error = run_agent(
        &provider,
        AgentKind::BrandVoice,
        &nike(),
        None,
        &sink,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();

    assert!(
        matches!(error, AgentError::StallTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "PROVIDER_STALLED");
    assert_eq!(drain(&mut rx), parts[..2].to_vec());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn malformed_json_content_is_malformed_output() {
    let server = MockServer::start(vec![stream_of("{\"summary\": \"Bold\", \"tone\": [", 3)]).await;

    let error = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap_err();

    assert!(
        matches!(error, AgentError::MalformedOutput { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "MALFORMED_OUTPUT");
    assert!(
        error
            .billed_usage()
            .is_some_and(|u| u.completion_tokens > 0)
    );
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_invalid_output_naming_the_field() {
    let mut answer: Value = serde_json::from_str(&brand_voice_answer()).unwrap();
    answer["dont"] = json!([]);
    let server = MockServer::start(vec![stream_of(&answer.to_string(), 3)]).await;

    let error = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap_err();

    let AgentError::InvalidOutput {
        field,
        problem,
        usage,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        (field.as_str(), problem.as_str()),
        ("dont", "must not be empty")
    );
    // The answer's tokens were used: the error keeps them.
    assert!(
        usage.prompt_tokens + usage.completion_tokens > 0,
        "{usage:?}"
    );
    assert_eq!(error.billed_usage(), Some(*usage));
    assert_eq!(error.code(), "INVALID_OUTPUT");
    assert!(error.to_string().contains("`dont`"));
}

#[tokio::test]
async fn a_stream_cut_before_the_end_is_a_protocol_error() {
    let server = MockServer::start(vec![Reply::Sse(vec![Piece::Bytes(content_event("{"))])]).await;

    let error = run(&server.provider(), AgentKind::BrandVoice)
        .await
        .unwrap_err();

    assert!(matches!(error, AgentError::Protocol { .. }), "{error:?}");
}

#[tokio::test]
async fn cancelling_mid_stream_returns_cancelled_promptly() {
    let server = MockServer::start(vec![Reply::Sse(vec![
        Piece::Bytes(content_event("{\"summary\": ")),
        Piece::Hang,
    ])])
    .await;
    let provider = server.provider_with(|c| c.stall_timeout = Duration::from_secs(30));
    let (sink, mut rx) = DeltaSink::channel(16);
    let cancel = CancellationToken::new();
    let context = nike();
    let run = run_agent(
        &provider,
        AgentKind::BrandVoice,
        &context,
        None,
        &sink,
        &cancel,
    );
    let canceller = async {
        // Cancel once streaming has visibly started.
        assert_eq!(rx.recv().await.as_deref(), Some("{\"summary\": "));
        cancel.cancel();
        Instant::now()
    };

    let (result, cancelled_at) = tokio::join!(run, canceller);

    assert_eq!(result.unwrap_err(), AgentError::Cancelled);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "cancellation took {:?}",
        cancelled_at.elapsed()
    );
}

#[tokio::test]
async fn cancelling_during_a_backoff_stops_the_retries() {
    let server = MockServer::start(vec![Reply::Status {
        status: 503,
        headers: vec![("retry-after", "30".to_owned())],
        body: String::new(),
    }])
    .await;
    let provider = server.provider_with(|c| c.max_backoff = Duration::from_secs(30));
    let cancel = CancellationToken::new();
    let context = nike();
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    };

    let sink = DeltaSink::none();
    let (result, ()) = tokio::join!(
        run_agent(
            &provider,
            AgentKind::BrandVoice,
            &context,
            None,
            &sink,
            &cancel
        ),
        canceller
    );

    assert_eq!(result.unwrap_err(), AgentError::Cancelled);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_configuration_never_prints_the_key() {
    let config = OpenAiConfig {
        api_key: Some(KEY.to_owned().into()),
        ..OpenAiConfig::default()
    };
    assert!(!format!("{config:?}").contains(KEY));
}
