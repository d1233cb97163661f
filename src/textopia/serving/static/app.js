// Textopia's web page: calls the same JSON API as any program (same origin, no external assets).
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// POST a JSON body; resolve to the parsed answer or throw an Error with the server's message.
async function postJSON(url, body) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new Error("Cannot reach the server: " + err.message);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    let message = (data && data.error) || "Request failed (HTTP " + response.status + ")";
    const retry = response.headers.get("Retry-After");
    if (response.status === 503 && retry) message += " (retry in " + retry + " s)";
    throw new Error(message);
  }
  return data;
}

async function copyText(text, button) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
    } else {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  } catch (err) {
    showError("Could not copy: " + err.message);
  }
}

// One list item: the text, an optional line of details, and a copy button.
function resultItem(text, details) {
  const item = document.createElement("li");
  const body = document.createElement("div");
  const p = document.createElement("p");
  p.className = "prompt-text";
  p.textContent = text;
  body.appendChild(p);
  if (details) {
    const meta = document.createElement("span");
    meta.className = "prompt-meta";
    meta.textContent = details;
    body.appendChild(meta);
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy this prompt");
  button.addEventListener("click", () => copyText(text, button));
  item.append(body, button);
  return item;
}

function bindOutput(inputId) {
  const input = $(inputId);
  const out = $(inputId + "-value");
  const update = () => { out.textContent = input.value; };
  input.addEventListener("input", update);
  update();
}

function formatCount(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "B";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(n);
}

function fillSelect(select, models, defaultName) {
  select.replaceChildren();
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.name;
    const size = m.parameters ? ", " + formatCount(m.parameters) + " params" : "";
    option.textContent = m.name + " (" + m.kind + size + ")";
    if (m.name === defaultName) option.selected = true;
    select.appendChild(option);
  }
}

// Each model's default temperature and known-words setting (from /v1/models): the controls start
// there for the model picked.
const defaultTemperature = new Map();
const defaultKnownWords = new Map();
const defaultSpread = new Map();
const defaultStrength = new Map();

function useModelDefaults() {
  const known = defaultKnownWords.get($("model").value);
  if (known !== undefined && known !== null) $("known").checked = known;
  const t = defaultTemperature.get($("model").value);
  if (t === undefined || t === null) return;
  $("temperature").value = t;
  $("temperature").dispatchEvent(new Event("input"));
}

// A VAE's variations take a spread, latent diffusion's an SDEdit strength: the page shows the
// slider of the chosen latent model, starting at its own default (measured for it).
function diffusionChosen() {
  const strength = defaultStrength.get($("latent-model").value);
  return strength !== undefined && strength !== null;
}

function useLatentDefaults() {
  const diffusion = diffusionChosen();
  $("spread-field").hidden = diffusion;
  $("strength-field").hidden = !diffusion;
  const id = diffusion ? "strength" : "spread";
  const value = (diffusion ? defaultStrength : defaultSpread).get($("latent-model").value);
  if (value === undefined || value === null) return;
  $(id).value = value;
  $(id).dispatchEvent(new Event("input"));
}

// The controls take the bounds of the API's request bodies (/openapi.json), which are the Python
// API's and the CLI's: one declaration (textopia.generation.config).
const BOUNDED = [
  ["temperature", "GenerateRequest", "temperature"], ["top_p", "GenerateRequest", "top_p"],
  ["n", "GenerateRequest", "n"], ["seed", "GenerateRequest", "seed"], ["steps", "InterpolateRequest", "steps"],
  ["spread", "VariationsRequest", "spread"], ["strength", "VariationsRequest", "strength"],
];

function schemaBound(field) {
  for (const s of [field, ...(field.anyOf || [])]) {
    // An open end ("(0, 1]") becomes the control's first step above it.
    const low = s.minimum ?? (s.exclusiveMinimum === undefined ? undefined : [s.exclusiveMinimum, true]);
    const high = s.maximum ?? s.exclusiveMaximum;
    if (low !== undefined || high !== undefined) return [low, high];
  }
  return [undefined, undefined];
}

async function applyBounds() {
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    const schemas = (await response.json()).components.schemas;
    for (const [id, schema, name] of BOUNDED) {
      const field = schemas[schema] && schemas[schema].properties[name];
      if (!field) continue;
      const [low, high] = schemaBound(field);
      if (Array.isArray(low)) $(id).min = String(low[0] + (Number($(id).step) || 0));
      else if (low !== undefined) $(id).min = String(low);
      if (high !== undefined) $(id).max = String(high);
    }
  } catch (err) {
    // The page's own bounds stand; the server still refuses what is out of bounds.
  }
}

async function loadModels() {
  try {
    const response = await fetch("/v1/models", { headers: { Accept: "application/json" } });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
    fillSelect($("model"), data.models, data.default);
    for (const m of data.models) {
      defaultTemperature.set(m.name, m.default_temperature);
      defaultKnownWords.set(m.name, m.default_known_words_only);
    }
    useModelDefaults();
    const latent = data.models.filter((m) => m.latent);
    if (latent.length) {
      fillSelect($("latent-model"), latent, latent[0].name);
      for (const m of latent) {
        defaultSpread.set(m.name, m.default_spread);
        defaultStrength.set(m.name, m.default_strength);
      }
      useLatentDefaults();
      $("latent").hidden = false;
    }
    $("status").textContent = data.models.length
      ? data.models.length + " model" + (data.models.length > 1 ? "s" : "") + " loaded"
      : "No model loaded yet";
  } catch (err) {
    $("status").textContent = "Could not list models: " + err.message;
  }
}

function splitWords(text) {
  return text.split(/[,\n]/).map((w) => w.trim()).filter((w) => w.length > 0).slice(0, 64);
}

async function generate(event) {
  event.preventDefault();
  const button = $("generate");
  const idea = $("idea").value.trim();
  const body = {
    idea: idea,
    mode: $("mode").value,
    n: Number($("n").value),
    temperature: Number($("temperature").value),
    top_p: Number($("top_p").value),
    banned_words: splitWords($("banned").value),
    safe_mode: $("safe").checked,
    known_words_only: $("known").checked,
  };
  if ($("model").value) body.model = $("model").value;
  const seed = $("seed").value.trim();
  if (seed !== "") body.seed = Number(seed);

  showError("");
  button.disabled = true;
  button.textContent = "Writing…";
  try {
    const data = await postJSON("/v1/generate", body);
    const list = $("results");
    list.replaceChildren();
    for (const p of data.prompts) {
      const clip = p.clip_tokens === null ? "" : " · " + p.clip_tokens + " CLIP tokens";
      list.appendChild(resultItem(p.prompt, p.num_tokens + " tokens" + clip));
    }
    let meta = data.model + " · seed " + data.seed + " · " + data.timing.total_s.toFixed(2) + " s";
    if (data.dropped) meta += " · " + data.dropped + " dropped by the word filters";
    if (!data.prompts.length) meta += " · no prompt passed the filters; try again";
    $("meta").textContent = meta;
    $("results-section").hidden = false;
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
    button.textContent = "Write prompts";
  }
}

// Each latent view writes its results under its own form.
async function latentCall(event, url, body, button, label, list) {
  event.preventDefault();
  showError("");
  const buttonText = button.textContent;
  button.disabled = true;
  button.textContent = "Working…";
  try {
    if ($("latent-model").value) body.model = $("latent-model").value;
    const data = await postJSON(url, body);
    list.replaceChildren();
    const total = data.prompts.length;
    data.prompts.forEach((text, i) => list.appendChild(resultItem(text, label + " " + (i + 1) + "/" + total)));
    if (data.dropped) showError(data.dropped + " result(s) dropped by safe mode");
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
    button.textContent = buttonText;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  ["temperature", "top_p", "n", "steps", "spread", "strength"].forEach(bindOutput);
  $("idea").addEventListener("input", () => { $("idea-count").textContent = $("idea").value.length; });
  $("idea").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("generate-form").requestSubmit();
  });
  $("generate-form").addEventListener("submit", generate);
  $("model").addEventListener("change", useModelDefaults);
  $("copy-all").addEventListener("click", (event) => {
    const texts = Array.from(document.querySelectorAll("#results .prompt-text")).map((p) => p.textContent);
    copyText(texts.join("\n"), event.currentTarget);
  });
  $("latent-model").addEventListener("change", useLatentDefaults);
  $("reconstruct-form").addEventListener("submit", (event) => latentCall(event, "/v1/reconstruct", {
    prompt: $("reconstruct-prompt").value.trim(),
    safe_mode: $("safe").checked,
  }, $("reconstruct"), "reconstruction", $("reconstruct-results")));
  $("interpolate-form").addEventListener("submit", (event) => latentCall(event, "/v1/interpolate", {
    prompt_a: $("prompt-a").value.trim(),
    prompt_b: $("prompt-b").value.trim(),
    steps: Number($("steps").value),
    safe_mode: $("safe").checked,
  }, $("interpolate"), "step", $("interpolate-results")));
  $("variations-form").addEventListener("submit", (event) => latentCall(event, "/v1/variations", {
    prompt: $("variation-prompt").value.trim(),
    n: Number($("n").value),
    ...(diffusionChosen() ? { strength: Number($("strength").value) } : { spread: Number($("spread").value) }),
    safe_mode: $("safe").checked,
  }, $("vary"), "variation", $("variations-results")));
  loadModels();
  applyBounds();
});
