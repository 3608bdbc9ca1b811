// segue's page: a playlist you build (title + tracks), its continuation with "because …" lines.
// Plain DOM, no framework, nothing fetched from outside this server. Text is always set with
// textContent, never parsed as HTML.
"use strict";

const state = { tracks: [], model: null, recsRequest: 0, searchRequest: 0 };
const $ = (id) => document.getElementById(id);
const RECS = 25;

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: { "content-type": "application/json" }, ...options,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || `${response.status} ${response.statusText}`);
  }
  return body;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function trackLine(track) {
  const line = el("span", "track");
  line.append(el("span", "name", track.track_name || track.track_uri), el("span", "sep", " — "),
              el("span", "artist", track.artist_name || "unknown artist"));
  return line;
}

// --- the playlist -----------------------------------------------------------------------------
function addTrack(track) {
  if (state.tracks.some((t) => t.track_uri === track.track_uri)) return;
  state.tracks.push({ track_uri: track.track_uri, track_name: track.track_name, artist_name: track.artist_name });
  renderPlaylist();
  refresh();
}

function removeTrack(uri) {
  state.tracks = state.tracks.filter((t) => t.track_uri !== uri);
  renderPlaylist();
  refresh();
}

function renderPlaylist() {
  const list = $("playlist");
  list.replaceChildren(...state.tracks.map((track) => {
    const item = el("li");
    item.dataset.uri = track.track_uri;
    const remove = el("button", "remove", "×");
    remove.type = "button";
    remove.title = "remove from the playlist";
    remove.addEventListener("click", () => removeTrack(track.track_uri));
    item.append(trackLine(track), remove);
    return item;
  }));
  $("playlist-empty").hidden = state.tracks.length > 0;
  $("save").disabled = state.tracks.length === 0;
}

// --- the continuation -------------------------------------------------------------------------
async function refresh() {
  const request = ++state.recsRequest;   // answers to older requests are dropped
  const started = performance.now();
  try {
    const body = await api("/v1/recommendations", {
      method: "POST",
      body: JSON.stringify({
        title: $("title").value, tracks: state.tracks.map((t) => t.track_uri),
        n: RECS, explain: true, model: state.model,
      }),
    });
    if (request !== state.recsRequest) return;
    renderRecs(body, performance.now() - started);
  } catch (error) {
    if (request !== state.recsRequest) return;
    $("notes").replaceChildren(el("li", "error", `Could not continue the playlist: ${error.message}`));
  }
}

function renderRecs(body, ms) {
  $("took").textContent = `(${body.model}, ${ms.toFixed(0)} ms)`;
  $("notes").replaceChildren(...body.notes.map((note) => el("li", null, note)));
  $("recs").replaceChildren(...body.items.map((track) => {
    const item = el("li");
    item.dataset.uri = track.track_uri;
    const add = el("button", "add", "+");
    add.type = "button";
    add.title = "add to the playlist";
    add.addEventListener("click", () => addTrack(track));
    const text = el("div", "text");
    text.append(trackLine(track));
    if (track.because) text.append(el("div", "because", track.because));
    item.append(add, text);
    return item;
  }));
}

// --- search -----------------------------------------------------------------------------------
async function search() {
  const query = $("search").value;
  const request = ++state.searchRequest;
  if (!query.trim()) {
    $("results").replaceChildren();
    $("search-status").textContent = "";
    return;
  }
  try {
    const params = new URLSearchParams({ q: query, limit: "10" });
    if (state.model) params.set("model", state.model);
    const body = await api(`/v1/tracks?${params}`);
    if (request !== state.searchRequest) return;
    const fixes = Object.entries(body.corrections)
      .map(([typed, meant]) => (meant.length ? `“${typed}” → ${meant.join(", ")}` : `no match for “${typed}”`));
    $("search-status").textContent =
      `${body.total.toLocaleString()} match${body.total === 1 ? "" : "es"}` + (fixes.length ? ` (${fixes.join("; ")})` : "");
    $("results").replaceChildren(...body.items.map((track) => {
      const item = el("li");
      item.dataset.uri = track.track_uri;
      const add = el("button", "add", "+");
      add.type = "button";
      add.title = "add to the playlist";
      add.addEventListener("click", () => addTrack(track));
      item.append(add, trackLine(track), el("span", "count", ` · in ${track.playlists.toLocaleString()} playlists`));
      return item;
    }));
  } catch (error) {
    if (request === state.searchRequest) $("search-status").textContent = `Search failed: ${error.message}`;
  }
}

// --- teaching the model -----------------------------------------------------------------------
async function save() {
  $("save").disabled = true;
  try {
    const body = await api("/v1/playlists", {
      method: "POST",
      body: JSON.stringify({ title: $("title").value, tracks: state.tracks.map((t) => t.track_uri) }),
    });
    const names = body.models.map((m) => m.name).join(", ");
    $("save-status").textContent = `Learned by ${names}; the next recommendations include it.`;
    refresh();
  } catch (error) {
    $("save-status").textContent = `Not learned: ${error.message}`;
  } finally {
    $("save").disabled = state.tracks.length === 0;
  }
}

async function init() {
  try {
    const body = await api("/v1/models");
    $("model").replaceChildren(...body.models.map((m) => {
      const option = el("option", null, `${m.name} (${m.kind})`);
      option.value = m.name;
      return option;
    }));
    state.model = body.models.length ? body.models[0].name : null;
  } catch (error) {
    $("notes").replaceChildren(el("li", "error", `Could not list the models: ${error.message}`));
  }
  $("model").addEventListener("change", (event) => { state.model = event.target.value; refresh(); search(); });
  $("title").addEventListener("input", debounce(refresh, 250));
  $("search").addEventListener("input", debounce(search, 150));
  $("save").addEventListener("click", save);
  $("clear").addEventListener("click", () => {
    state.tracks = [];
    $("title").value = "";
    $("save-status").textContent = "";
    renderPlaylist();
    refresh();
  });
  renderPlaylist();
  refresh();
}

init();
