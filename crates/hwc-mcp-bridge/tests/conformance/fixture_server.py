#!/usr/bin/env python3
"""A CONFORMANCE FIXTURE SERVER, the suite's own fixture set, behind the bridge.

npm `@modelcontextprotocol/conformance` (`conformance server --url ...`)
calls tools, resources and prompts by fixed names (`test_simple_text`,
`test://static-text`, `test_simple_prompt`, ...) that no published MCP
server has. This stdio server provides exactly that set, with the content
each scenario's description asks for, on the official PyPI `mcp` 1.x SDK
(FastMCP plus the low-level handlers FastMCP does not wrap: logging level,
resource subscriptions). crates/hwc-mcp-bridge/tests/conformance.rs runs
it as the bridge's child; it is never a stand-in for the real servers of
tests/real_peers.rs.

The tools needing server-to-client requests (sampling, elicitation) are
here too: through the bridge they fail by design (it declares no client
capabilities to children), and conformance/baseline*.yml says so.
"""
import asyncio
import base64
import json
from typing import Annotated

from mcp import types
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ResourceError
from mcp.server.fastmcp.prompts.base import Message, UserMessage
from mcp.shared.exceptions import McpError
from pydantic import Field

# A 1x1 red PNG and a 44-byte silent WAV header.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
WAV = base64.b64encode(
    b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    + b"data" + (0).to_bytes(4, "little")
).decode()

mcp = FastMCP("hwc-conformance-fixture")
low = mcp._mcp_server  # noqa: SLF001 (handlers FastMCP has no decorator for)
level = {"value": "info"}
subscriptions = set()


@mcp.tool(description="Returns simple text")
def test_simple_text() -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text="This is a simple text response for testing.")]


@mcp.tool(description="Returns an image")
def test_image_content() -> list[types.ContentBlock]:
    return [types.ImageContent(type="image", data=PNG, mimeType="image/png")]


@mcp.tool(description="Returns audio")
def test_audio_content() -> list[types.ContentBlock]:
    return [types.AudioContent(type="audio", data=WAV, mimeType="audio/wav")]


@mcp.tool(description="Returns an embedded resource")
def test_embedded_resource() -> list[types.ContentBlock]:
    return [
        types.EmbeddedResource(
            type="resource",
            resource=types.TextResourceContents(
                uri="test://embedded-resource",
                mimeType="text/plain",
                text="This is an embedded resource content.",
            ),
        )
    ]


@mcp.tool(description="Returns text, image and resource")
def test_multiple_content_types() -> list[types.ContentBlock]:
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=PNG, mimeType="image/png"),
        types.EmbeddedResource(
            type="resource",
            resource=types.TextResourceContents(
                uri="test://mixed-content-resource",
                mimeType="application/json",
                text=json.dumps({"test": "data", "value": 123}),
            ),
        ),
    ]


@mcp.tool(description="Sends three log messages while it runs")
async def test_tool_with_logging(ctx: Context) -> str:
    await ctx.info("Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.info("Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@mcp.tool(description="Reports progress 0, 50, 100 of 100")
async def test_tool_with_progress(ctx: Context) -> str:
    for p in (0, 50, 100):
        await ctx.report_progress(p, 100)
        if p < 100:
            await asyncio.sleep(0.05)
    return "Tool with progress executed successfully"


@mcp.tool(description="Mirrors `region` into the Mcp-Param-Region header (SEP-2243)")
def test_header_param(
    region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    query: str = "",
) -> str:
    return f"region={region} query={query}"


@mcp.tool(description="Always fails")
def test_error_handling() -> str:
    raise ValueError("This tool intentionally returns an error for testing")


@mcp.tool(description="Asks the client to sample an LLM")
async def test_sampling(prompt: str, ctx: Context) -> str:
    r = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=100,
    )
    return f"LLM response: {getattr(r.content, 'text', '')}"


@mcp.tool(description="Asks the client for user input")
async def test_elicitation(message: str, ctx: Context) -> str:
    r = await ctx.session.elicit(
        message=message,
        requestedSchema={
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        },
    )
    return f"User response: action={r.action}, content={json.dumps(r.content)}"


@mcp.tool(description="Elicitation with defaults (SEP-1034)")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    r = await ctx.session.elicit(
        message="Please review and update the form fields with defaults",
        requestedSchema={
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "default": True},
            },
        },
    )
    return f"Elicitation completed: action={r.action}, content={json.dumps(r.content)}"


@mcp.tool(description="Elicitation with enum schemas (SEP-1330)")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    r = await ctx.session.elicit(
        message="Please select options",
        requestedSchema={
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
        },
    )
    return f"Elicitation completed: action={r.action}, content={json.dumps(r.content)}"


# json-schema-2020-12: `$schema`, `$defs` and `additionalProperties` must
# survive tools/list, so this tool's schema is set by hand below.
@mcp.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool(name: str = "", address: dict | None = None) -> str:
    return f"name={name} address={json.dumps(address)}"


mcp._tool_manager.get_tool("json_schema_2020_12_tool").parameters = {  # noqa: SLF001
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


@mcp.resource("test://static-text", name="static-text", description="A static text resource", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@mcp.resource(
    "test://static-binary", name="static-binary", description="A static binary resource", mime_type="image/png"
)
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@mcp.resource(
    "test://template/{id}/data",
    name="template-data",
    description="A resource template with an id",
    mime_type="application/json",
)
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@mcp.resource(
    "test://watched-resource", name="watched-resource", description="A resource to subscribe to", mime_type="text/plain"
)
def watched() -> str:
    return "Watched resource content"


@mcp.prompt(description="A simple prompt without arguments")
def test_simple_prompt() -> list[Message]:
    return [UserMessage("This is a simple prompt for testing.")]


@mcp.prompt(description="A prompt with two required arguments")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
    return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]


@mcp.prompt(description="A prompt embedding a resource")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:  # noqa: N803 (the suite's name)
    return [
        UserMessage(
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(
                    uri=resourceUri, mimeType="text/plain", text="Embedded resource content for testing."
                ),
            )
        ),
        UserMessage("Please process the embedded resource above."),
    ]


@mcp.prompt(description="A prompt with an image")
def test_prompt_with_image() -> list[Message]:
    return [
        UserMessage(types.ImageContent(type="image", data=PNG, mimeType="image/png")),
        UserMessage("Please analyze the image above."),
    ]


@mcp.completion()
async def complete(ref, argument, context) -> types.Completion:
    values = [v for v in ("paris", "park", "party", "test", "testValue1") if v.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), hasMore=False)


@low.set_logging_level()
async def set_level(lvl: types.LoggingLevel) -> None:
    level["value"] = lvl


@low.subscribe_resource()
async def subscribe(uri) -> None:
    subscriptions.add(str(uri))


@low.unsubscribe_resource()
async def unsubscribe(uri) -> None:
    subscriptions.discard(str(uri))


# sep-2164-resource-not-found: an unknown resource is -32602 with the URI in
# `data` (FastMCP alone answers code 0).
_read = mcp.read_resource


@low.read_resource()
async def read_or_not_found(uri):
    try:
        return await _read(uri)
    except (ResourceError, ValueError):  # the resource manager raises ValueError
        raise McpError(
            types.ErrorData(code=types.INVALID_PARAMS, message=f"Resource not found: {uri}", data={"uri": str(uri)})
        ) from None


if __name__ == "__main__":
    mcp.run("stdio")
