// Run by executable_test.ts in its own process: an executable with a worker
// that is never destroyed must not keep the process alive.
import { makeGraph, makeNode } from "../../../compiler/ir.ts";
import { createWasmExecutable } from "../../../backends/wasm/mod.ts";
import * as ops from "../../../ops/mod.ts";

const x = makeNode(ops.input, [], { shape: [300, 300], dtype: "f32" }, "x");
const graph = makeGraph({ inputs: [x], outputs: { out: makeNode(ops.matmul, [x, x], {}) } });
const exe = await createWasmExecutable(graph, { threads: 2 });
const out = await (await exe.run({ x: new Float32Array(300 * 300).fill(1) })).read("out");
console.log(out[0]);
