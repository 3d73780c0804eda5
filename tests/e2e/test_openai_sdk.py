"""The router driven by the official ``openai`` Python SDK against a real
llama.cpp ``llama-server`` (see conftest.py for the setup).

Model output is never checked beyond being non-empty: SmolLM2-135M's text is
not something to assert on.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import uuid
import urllib.request

import openai
import pytest

from conftest import Router, http_get, requests_by_outcome, tokens_today

HELLO = [{"role": "user", "content": "Say hello."}]
# Small, and as repeatable as llama.cpp allows.
GEN = {"max_tokens": 12, "temperature": 0, "seed": 1}


def route_of(headers) -> dict[str, str]:
    """``model=small; decision=alias; reason=alias default`` as a dict."""
    value = headers.get("x-hwc-route")
    assert value, f"no x-hwc-route header in {dict(headers)}"
    parts = [p.strip() for p in value.split(";")]
    return dict(p.split("=", 1) for p in parts)


def raw_post(router: Router, path: str, body: bytes, key: str | None = "sk-alice",
             content_type: str = "application/json") -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of a POST that bypasses the SDK."""
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(router.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, data = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, data = e.code, dict(e.headers), e.read()
    return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(data)


def assert_openai_error(body: dict, *, code: str, type_: str | None = None) -> dict:
    """The body has OpenAI's error shape; returns the inner object."""
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    assert err["code"] == code, err
    if type_ is not None:
        assert err["type"] == type_, err
    return err


# --------------------------------------------------------------------------
# 1. non-streamed chat


def test_chat_via_alias_default(alice: openai.OpenAI) -> None:
    raw = alice.chat.completions.with_raw_response.create(
        model="default", messages=HELLO, **GEN
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-hwc-backend") == "llama"
    route = route_of(raw.headers)
    assert route["model"] == "small"
    assert route["decision"] == "alias"
    assert route["reason"] == "alias default"

    completion = raw.parse()
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.object == "chat.completion"
    # The name asked for, never llama-server's GGUF path.
    assert completion.model == "default"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content, "empty answer"
    assert choice.finish_reason in ("stop", "length")

    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= GEN["max_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_by_model_name_is_direct(alice: openai.OpenAI) -> None:
    raw = alice.chat.completions.with_raw_response.create(model="small", messages=HELLO, **GEN)
    route = route_of(raw.headers)
    assert (route["model"], route["decision"]) == ("small", "direct")
    assert raw.headers.get("x-hwc-backend") == "llama"
    assert raw.parse().choices[0].message.content


def test_usage_is_counted_per_key(router: Router, alice: openai.OpenAI) -> None:
    def tokens() -> int:
        status, body = http_get(router.url + "/status",
                                headers={"Authorization": "Bearer sk-alice"})
        assert status == 200, body
        return json.loads(body)["usage"]["tokens_by_key"].get("alice", 0)

    before = tokens()
    completion = alice.chat.completions.create(model="small", messages=HELLO, **GEN)
    assert completion.usage is not None
    assert tokens() - before == completion.usage.total_tokens


# --------------------------------------------------------------------------
# 2. streamed chat


def test_stream_yields_deltas_and_final_usage(alice: openai.OpenAI) -> None:
    raw = alice.chat.completions.with_raw_response.create(
        model="default",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        **GEN,
    )
    assert raw.status_code == 200
    assert raw.headers.get("content-type", "").startswith("text/event-stream")
    assert raw.headers.get("x-hwc-backend") == "llama"
    assert route_of(raw.headers)["decision"] == "alias"

    chunks = list(raw.parse())  # the SDK stops at `data: [DONE]`
    assert chunks, "no chunks"
    for c in chunks:
        assert isinstance(c, openai.types.chat.ChatCompletionChunk)
        assert c.object == "chat.completion.chunk"

    content = [
        c.choices[0].delta.content
        for c in chunks
        if c.choices and c.choices[0].delta.content
    ]
    assert content, f"no content deltas in {chunks}"
    assert "".join(content)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes and finishes[-1] in ("stop", "length")

    # include_usage: the last chunk carries usage and no choices.
    last = chunks[-1]
    assert last.usage is not None, f"last chunk has no usage: {last}"
    assert last.choices == []
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def requests_total(router: Router, outcome: str) -> float:
    """hwc_router_requests_total for model `small` with `outcome`."""
    return requests_by_outcome(router, "small").get(outcome, 0.0)


def wait_for(what: str, check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_helper_usage_is_charged(router: Router, alice: openai.OpenAI,
                                        include_usage: bool) -> None:
    """The SDK's `chat.completions.stream()` helper closes the connection
    as soon as it has `data: [DONE]`: the router still books the stream as
    `ok` with its usage, and the key's budget sees it."""
    ok, cancelled, before = (requests_total(router, "ok"), requests_total(router, "cancelled"),
                             tokens_today(router))
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    with alice.chat.completions.stream(model="small", messages=HELLO, **GEN, **extra) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        try:
            final = stream.get_final_completion()
        except openai.LengthFinishReasonError as e:  # GEN's max_tokens reached
            final = e.completion
    assert "".join(deltas), "no content"
    assert final.model == "small", final.model

    wait_for("the stream booked as ok", lambda: requests_total(router, "ok") == ok + 1)
    assert requests_total(router, "cancelled") == cancelled
    used = tokens_today(router) - before
    if include_usage:
        assert final.usage is not None
        assert used == final.usage.total_tokens, (used, final.usage)
    else:
        # The router asked llama-server for usage itself.
        assert final.usage is None
        assert used > 0


def test_stream_without_usage_option(alice: openai.OpenAI) -> None:
    stream = alice.chat.completions.create(model="small", messages=HELLO, stream=True, **GEN)
    with stream:
        chunks = list(stream)
    assert any(c.choices and c.choices[0].delta.content for c in chunks)


def test_stream_closed_early_leaves_router_healthy(router: Router, alice: openai.OpenAI) -> None:
    stream = alice.chat.completions.create(
        model="small", messages=HELLO, stream=True, max_tokens=64
    )
    with stream:
        first = next(iter(stream))
    assert first.model == "small"
    # The router dropped the upstream request and still serves.
    completion = alice.chat.completions.create(model="small", messages=HELLO, **GEN)
    assert completion.choices[0].message.content
    assert http_get(router.url + "/readyz")[0] == 200


# --------------------------------------------------------------------------
# 3. models


def test_models_list(alice: openai.OpenAI) -> None:
    page = alice.models.list()
    ids = [m.id for m in page.data]
    assert {"small", "default", "auto", "cloudonly"} <= set(ids), ids
    assert len(ids) == len(set(ids)), ids
    for m in page.data:
        assert m.object == "model"
        assert isinstance(m.created, int)
        assert m.owned_by


def test_models_retrieve_is_not_routed(alice: openai.OpenAI) -> None:
    """GET /v1/models/{id} is not served; the SDK sees a 404, not a crash."""
    with pytest.raises(openai.NotFoundError):
        alice.models.retrieve("small")


# --------------------------------------------------------------------------
# 3b. the Responses API, translated to chat for a backend without it
#     (the `llama` backend here has no responses_api)


def test_responses_create_is_translated(router: Router, alice: openai.OpenAI) -> None:
    before = tokens_today(router)
    resp = alice.responses.create(model="small", instructions="Answer in one word.",
                                  input="Say hello.", max_output_tokens=12, temperature=0)
    assert resp.object == "response"
    assert resp.id.startswith("resp_")
    assert resp.model == "small", resp.model
    assert resp.status in ("completed", "incomplete"), resp.status
    if resp.status == "incomplete":
        assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.output_text, resp.output
    assert resp.output[-1].type == "message"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    wait_for("the usage booked", lambda: tokens_today(router) - before == resp.usage.total_tokens)


def test_responses_stream_helper_is_translated_and_charged(router: Router,
                                                          alice: openai.OpenAI) -> None:
    """The SDK's `responses.stream()` helper reads the event sequence the
    router builds from llama-server's chat stream, and closes at
    `response.completed`: booked ok with the usage it carries."""
    ok, cancelled, before = (requests_total(router, "ok"), requests_total(router, "cancelled"),
                             tokens_today(router))
    with alice.responses.stream(model="small", input="Say hello.", max_output_tokens=12,
                                temperature=0) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    # At max_output_tokens the last event is response.incomplete (the SDK's
    # get_final_response() wants response.completed, as against OpenAI).
    final = events[-1].response
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert "response.output_text.delta" in kinds, kinds
    assert kinds[-1] in ("response.completed", "response.incomplete"), kinds
    assert final.model == "small", final.model
    assert final.output_text
    wait_for("the stream booked as ok", lambda: requests_total(router, "ok") == ok + 1)
    assert requests_total(router, "cancelled") == cancelled
    assert tokens_today(router) - before == final.usage.total_tokens > 0


def test_responses_tool_outputs_go_back_to_the_model(alice: openai.OpenAI) -> None:
    """A stateless client's second turn: its function call and the tool's
    output as input items, with the tool offered flat."""
    tools = [{"type": "function", "name": "get_time", "description": "The time now",
              "parameters": {"type": "object", "properties": {}}}]
    resp = alice.responses.create(
        model="small", tools=tools, max_output_tokens=12, temperature=0,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "What time is it?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "12:00"},
        ])
    assert resp.model == "small"
    assert resp.output, resp
    assert resp.usage.input_tokens > 0


def test_responses_what_cannot_be_translated_is_a_bad_request(alice: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        alice.responses.create(model="small", input="x",
                               tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}])
    assert e.value.code == "untranslatable_request"
    assert "file_search" in e.value.message


# --------------------------------------------------------------------------
# 3c. stored responses: the router keeps what llama-server does not


def _two_turns(client: openai.OpenAI, model: str) -> None:
    """`previous_response_id`, `responses.retrieve` and `responses.delete`
    through the SDK, as against OpenAI."""
    first = client.responses.create(model=model, input="My name is Ada. Say OK.",
                                    max_output_tokens=8, temperature=0)
    assert first.store is True, "stored by default, as OpenAI does"
    second = client.responses.create(model=model, previous_response_id=first.id,
                                     input="What is my name?", max_output_tokens=8,
                                     temperature=0)
    assert second.previous_response_id == first.id
    # The first turn went to the model again: the prompt grew by it.
    alone = client.responses.create(model=model, input="What is my name?",
                                    max_output_tokens=8, temperature=0, store=False)
    assert alone.store is False
    assert second.usage.input_tokens > alone.usage.input_tokens, (second.usage, alone.usage)

    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(alone.id)
    deleted = client.responses.delete(first.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model=model, previous_response_id=first.id, input="x")
    assert e.value.code == "previous_response_not_found"


def test_responses_previous_response_id_translated(alice: openai.OpenAI) -> None:
    _two_turns(alice, "small")


def test_responses_stream_then_previous_response_id(alice: openai.OpenAI) -> None:
    with alice.responses.stream(model="small", input="Say hello.", max_output_tokens=8,
                                temperature=0) as stream:
        events = list(stream)
    final = events[-1].response
    assert final.store is True
    got = alice.responses.retrieve(final.id)
    assert got.output_text == final.output_text
    nxt = alice.responses.create(model="small", previous_response_id=final.id,
                                 input="Again.", max_output_tokens=8, temperature=0)
    assert nxt.previous_response_id == final.id
    alice.responses.delete(final.id)
    alice.responses.delete(nxt.id)


def test_responses_of_another_key_are_not_found(router: Router, alice: openai.OpenAI) -> None:
    mine = alice.responses.create(model="small", input="A secret.", max_output_tokens=4,
                                  temperature=0)
    other = router.client("sk-local")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError) as e:
        other.responses.create(model="small", previous_response_id=mine.id, input="x")
    assert e.value.code == "previous_response_not_found"
    assert alice.responses.retrieve(mine.id).id == mine.id


def test_responses_previous_response_id_passthrough(llama_server, tmp_path) -> None:
    """The same against llama-server's own /v1/responses (stateless): the
    router sends it the conversation, never the id."""
    import conftest

    keys = tmp_path / "keys.toml"
    keys.write_text(conftest.KEYS_TOML)
    port = conftest.free_port()
    config = tmp_path / "router.toml"
    config.write_text(conftest.router_config(
        port=port, keys_file=keys, database=tmp_path / "router.sqlite",
        llama_url=llama_server.url, dead_port=conftest.free_port(),
    ) + f"""
[[backends]]
name = "llama-responses"
kind = "openai"
locality = "local"
responses_api = true
urls = ["{llama_server.url}/v1"]

[models.passthrough]
targets = [{{ backend = "llama-responses", model = "smollm2" }}]
""")
    r = conftest.start_router_with(tmp_path, config, port)
    try:
        _two_turns(r.client("sk-alice"), "passthrough")
    finally:
        r.proc.stop()


# --------------------------------------------------------------------------
# 4. errors as the SDK's own exception types


def test_wrong_key_is_authentication_error(router: Router) -> None:
    client = router.client("sk-wrong")
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="default", messages=HELLO, **GEN)
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"
    assert exc.value.message

    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_missing_key_is_401(router: Router) -> None:
    body = json.dumps({"model": "default", "messages": HELLO}).encode()
    status, _, err = raw_post(router, "/v1/chat/completions", body, key=None)
    assert status == 401
    assert_openai_error(err, code="invalid_api_key")


def test_unknown_model_is_not_found(alice: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        alice.chat.completions.create(model="no-such-model", messages=HELLO, **GEN)
    e = exc.value
    assert e.status_code == 404
    assert e.code == "model_not_found"
    assert e.param == "model"
    assert "no-such-model" in e.message


def test_local_only_key_cannot_reach_cloud_model(router: Router) -> None:
    client = router.client("sk-local")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="cloudonly", messages=HELLO, **GEN)
    assert exc.value.status_code == 403
    assert exc.value.code == "no_local_backend"
    assert "cloudonly" in exc.value.message

    # The same key may still use a local model.
    ok = client.chat.completions.create(model="default", messages=HELLO, **GEN)
    assert ok.choices[0].message.content


def test_local_only_header_cannot_reach_cloud_model(alice: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as exc:
        alice.chat.completions.create(
            model="cloudonly",
            messages=HELLO,
            extra_headers={"x-hwc-privacy": "local-only"},
            **GEN,
        )
    assert exc.value.code == "no_local_backend"


def test_rate_limit_is_rate_limit_error(router: Router) -> None:
    # Only this test uses sk-limited (1 request a minute).
    client = router.client("sk-limited")
    first = client.chat.completions.create(model="small", messages=HELLO, max_tokens=1)
    assert first.choices
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="small", messages=HELLO, max_tokens=1)
    e = exc.value
    assert e.status_code == 429
    assert e.code == "rate_limited"
    retry_after = e.response.headers.get("retry-after")
    assert retry_after is not None, dict(e.response.headers)
    assert 0 < float(retry_after) <= 60


def test_empty_messages_is_bad_request(alice: openai.OpenAI) -> None:
    # The SDK does not validate `messages` and sends [] as it is.
    with pytest.raises(openai.BadRequestError) as exc:
        alice.chat.completions.create(model="default", messages=[], **GEN)
    e = exc.value
    assert e.status_code == 400
    assert e.param == "messages"
    assert e.code == "invalid_value"
    assert "empty" in e.message


def test_bad_field_types_are_bad_request(alice: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        alice.chat.completions.create(
            model="default", messages=[{"role": "user", "content": 5}], **GEN
        )
    assert exc.value.param == "messages[0].content"

    with pytest.raises(openai.BadRequestError) as exc:
        alice.chat.completions.create(
            model="default", messages=HELLO, extra_body={"tools": {}}, **GEN
        )
    assert exc.value.param == "tools"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b"[]", "invalid_json"),
        (b"", "empty_body"),
        (b'{"messages":[{"role":"user","content":"hi"}]}', "missing_model"),
    ],
)
def test_malformed_body_is_400(router: Router, body: bytes, code: str) -> None:
    status, _, err = raw_post(router, "/v1/chat/completions", body)
    assert status == 400
    assert_openai_error(err, code=code, type_="invalid_request_error")


def test_dead_cloud_backend_is_server_error(alice: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as exc:
        alice.chat.completions.create(model="cloudonly", messages=HELLO, **GEN)
    e = exc.value
    assert e.status_code in (502, 503)
    assert e.code in ("upstream_failed", "backends_cooling_down")
    assert "cloudonly" in e.message


# --------------------------------------------------------------------------
# 5. auto


def test_auto_routes_to_default_model(alice: openai.OpenAI) -> None:
    raw = alice.chat.completions.with_raw_response.create(model="auto", messages=HELLO, **GEN)
    route = route_of(raw.headers)
    assert route["decision"] == "auto-default"
    assert route["model"] == "small"
    assert raw.headers.get("x-hwc-backend") == "llama"
    assert raw.parse().choices[0].message.content


def test_auto_streamed(alice: openai.OpenAI) -> None:
    raw = alice.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, stream=True, **GEN
    )
    assert "decision=auto-default" in raw.headers.get("x-hwc-route", "")
    chunks = list(raw.parse())
    assert any(c.choices and c.choices[0].delta.content for c in chunks)


# --------------------------------------------------------------------------
# idempotency


def test_idempotency_key_replays_the_answer(alice: openai.OpenAI) -> None:
    key = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    first = alice.chat.completions.with_raw_response.create(
        model="small", messages=HELLO, extra_headers=key, **GEN
    )
    again = alice.chat.completions.with_raw_response.create(
        model="small", messages=HELLO, extra_headers=key, **GEN
    )
    assert first.headers.get("idempotent-replayed") is None
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.headers.get("x-hwc-backend") == "llama"
    assert again.parse().id == first.parse().id

    # The same key with a different body is refused.
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        alice.chat.completions.create(
            model="small", messages=HELLO, extra_headers=key, max_tokens=GEN["max_tokens"] + 1
        )
    assert exc.value.code == "idempotency_key_reused"


# --------------------------------------------------------------------------
# an endpoint a backend can't serve


def test_unsupported_endpoint_does_not_take_backend_out(router_factory) -> None:
    r = router_factory()  # its own router: the cooldown must not leak into other tests
    client = r.client()
    # llama-server without --embeddings answers 501: passed on, not retried,
    # and not held against the backend.
    with pytest.raises(openai.APIStatusError) as exc:
        client.embeddings.create(model="small", input="hello")
    assert exc.value.status_code == 501
    assert "embeddings" in exc.value.message
    # llama-server is fine for chat; the router must still send chat to it.
    completion = client.chat.completions.create(model="small", messages=HELLO, **GEN)
    assert completion.choices[0].message.content


# --------------------------------------------------------------------------
# lifecycle


def test_sigterm_exits_zero(router_factory) -> None:
    r = router_factory()
    completion = r.client().chat.completions.create(model="small", messages=HELLO, **GEN)
    assert completion.choices[0].message.content
    r.proc.popen.send_signal(signal.SIGTERM)
    assert r.proc.popen.wait(timeout=30) == 0, (r.proc.log.read_text(errors="replace"))[-3000:]


def test_unknown_endpoint_is_an_sdk_not_found(router) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        router.client().models.retrieve("small")
    assert exc.value.code == "unknown_endpoint"


def test_metrics_pass_promtool(router) -> None:
    """The router's /metrics text is clean for `promtool check metrics`."""
    import shutil
    import subprocess
    import urllib.request

    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup.sh installs Debian's prometheus package"
    router.client().chat.completions.create(model="small", messages=HELLO, **GEN)
    with urllib.request.urlopen(router.url + "/metrics") as resp:
        text = resp.read()
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert out.returncode == 0, (out.stdout + out.stderr).decode()
