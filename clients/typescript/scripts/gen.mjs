#!/usr/bin/env node
// Generates src/gen from the protos with the pinned buf CLI and the local protoc-gen-es
// (`npm run gen`), or checks that the committed src/gen is what they generate now
// (`npm run gen:check`: regenerates into a temporary folder, diffs, exits 1 when stale).
//
// buf runs from the repository root: its buf.yaml is the workspace (protos/ and
// third_party/googleapis/), and buf.gen.yaml's paths are relative to it.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = resolve(PKG, "../..");
const TEMPLATE = relative(ROOT, join(PKG, "buf.gen.yaml"));
const GEN = join(PKG, "src", "gen");
const BUF = process.env.BUF ?? join(ROOT, "node_modules", ".bin", "buf");
const PLUGIN = join(PKG, "node_modules", ".bin", "protoc-gen-es");

const check = process.argv.includes("--check");

function fail(message) {
  console.error(`gen${check ? ":check" : ""}: ${message}`);
  process.exit(1);
}

if (!existsSync(BUF)) {
  fail(`the pinned buf CLI is missing (${relative(process.cwd(), BUF)}): run \`make setup\` (npm ci at the repository root).`);
}
if (!existsSync(PLUGIN)) {
  fail("protoc-gen-es is missing: run `make setup` (or `npm ci` in clients/typescript).");
}

function generate(outPrefix) {
  const args = ["generate", "--template", TEMPLATE];
  if (outPrefix) args.push("-o", outPrefix);
  const run = spawnSync(BUF, args, { cwd: ROOT, stdio: "inherit" });
  if (run.error) fail(`could not run buf: ${run.error.message}`);
  if (run.status !== 0) fail(`buf generate failed (exit ${run.status}).`);
}

/** Every file under dir, as paths relative to dir. */
function files(dir, base = dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path, base) : [relative(base, path)];
  });
}

if (!check) {
  generate();
  console.log(`gen: wrote ${relative(process.cwd(), GEN) || "."} (${files(GEN).length} files)`);
  process.exit(0);
}

const problems = [];

const tmp = mkdtempSync(join(tmpdir(), "sigma-ts-gen-"));
try {
  generate(tmp);
  const fresh = join(tmp, relative(ROOT, GEN));
  const want = new Set(files(fresh));
  const have = new Set(files(GEN));
  for (const name of want) {
    if (!have.has(name)) problems.push(`missing: src/gen/${name}`);
    else if (!readFileSync(join(GEN, name)).equals(readFileSync(join(fresh, name)))) problems.push(`stale:   src/gen/${name}`);
  }
  for (const name of have) if (!want.has(name)) problems.push(`extra:   src/gen/${name}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

if (problems.length > 0) {
  fail(
    "the generated TypeScript code is out of date with the protos:\n" +
      problems.map((p) => `  ${p}`).join("\n") +
      "\nRegenerate with `npm run gen` in clients/typescript and commit the result.",
  );
}
console.log(`gen:check: clients/typescript/src/gen is up to date (${files(GEN).length} files).`);
