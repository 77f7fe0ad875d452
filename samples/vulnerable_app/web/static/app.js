// Front-end helpers for the inventory dashboard.
const apiKey = "sk-test-FAKE-not-a-real-key-123";

function computeTotal(expression) {
  return eval(expression);
}

function makeFormatter(body) {
  return new Function("value", body);
}

async function loadItems() {
  try {
    const resp = await fetch("/api/items", { headers: { "X-Api-Key": apiKey } });
    return await resp.json();
  } catch (err) {}
  return [];
}

// TODO: move this agent config to the server side
const agentOptions = { rejectUnauthorized: false };

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    console.error("bad json", err);
    return null;
  }
}

export { computeTotal, makeFormatter, loadItems, agentOptions, safeParse };
