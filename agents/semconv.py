"""OpenTelemetry GenAI semantic-convention names, in one place (the conventions are still in
Development status and have moved repositories)."""

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"  # "function" (runs here) or "extension" (runs elsewhere)
WORKFLOW_NAME = "gen_ai.workflow.name"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
OUTPUT_TYPE = "gen_ai.output.type"  # "json" when the call must answer the output schema
FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_ID = "gen_ai.response.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
# Not in the conventions yet, but what Langfuse and OpenLIT read as a span's cost in USD.
COST = "gen_ai.usage.cost"
ERROR_TYPE = "error.type"  # the general convention, on every span that failed
USER_ID = "user.id"  # the general convention: who decided at a gate
# Content attributes: only written when HARNESS_CAPTURE_CONTENT is on.
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"  # a system prompt sent beside the messages
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
TARGET_PATH = "harness.target.path"
# OpenInference's input and output (what Phoenix and Langfuse show in a trace's list), content.
INPUT_VALUE = "input.value"
INPUT_MIME = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME = "output.mime_type"
JSON_MIME = "application/json"  # the target's absolute path on the server

OP_WORKFLOW = "invoke_workflow"
OP_AGENT = "invoke_agent"
OP_CHAT = "chat"
OP_TOOL = "execute_tool"

# OpenInference's free-form JSON that Phoenix shows as a span's metadata.
METADATA = "metadata"

# Our own attributes.
RUN_ID = "harness.run_id"
TASK_ID = "harness.task_id"
COST_USD = "harness.cost_usd"
RUN_STATUS = "harness.status"
UNPRICED = "harness.unpriced"
# The offline analyzer (provider ``heuristic``) calls no model: its agents' token counts and cost
# are nominal (they exercise budgets and charts), so they go under these names, never under
# gen_ai.usage.*, which LLM-ops tools add up as a model's tokens and spend.
OFFLINE = "harness.offline"
NOMINAL_INPUT_TOKENS = "harness.nominal.input_tokens"
NOMINAL_OUTPUT_TOKENS = "harness.nominal.output_tokens"
BUDGET_USD = "harness.budget_usd"
ALLOWANCE_USD = "harness.allowance.usd"  # an agent's allowance: its share of its parent's
TARGET = "harness.target"  # the target as users see it, relative to its allowed root
# A reviewer's decision at a gate (a ``review`` span); the comment only with content capture.
GATE = "harness.gate"
DECISION = "harness.decision"
APPROVAL_ID = "harness.approval_id"
DECISION_COMMENT = "harness.decision.comment"
