import { equal, ok } from "node:assert/strict";
import { checkPeerLosses, LATER_TOLERANCE, STEP0_TOLERANCE } from "../../bench/peers/check.ts";
import { peerWeights, wgradConfig } from "../../bench/peers/shared.ts";
import { prepareStep, randomBatches } from "../../cli/bench.ts";

const TINY = {
  layers: 1,
  dModel: 16,
  heads: 2,
  seq: 8,
  batch: 2,
  vocab: 16,
  r: 8,
  targets: ["q_proj", "v_proj"],
};

Deno.test("peers: tfjs and jax-js (webgpu, wasm) compute wgrad's VeRA losses on the same weights", async () => {
  const rows = await checkPeerLosses(TINY, { steps: 3 });
  equal(rows.map((r) => r.name).join(), "wgrad webgpu,tfjs webgpu,jax-js webgpu,jax-js wasm");
  for (const row of rows.slice(1)) {
    ok(row.maxStep0 < STEP0_TOLERANCE, `${row.name}: step 0 |Δ| ${row.maxStep0}`);
    ok(row.maxLater < LATER_TOLERANCE, `${row.name}: later |Δ| ${row.maxLater}`);
  }
});

Deno.test("peers: the check's non-zero lambdaB makes the VeRA branch change the loss", async () => {
  const batches = randomBatches(TINY, { count: 1 });
  const loss = async (lambdaB: "zeros" | "random") => {
    const weights = peerWeights(TINY, { lambdaB, weightScale: 10 });
    const params = Object.fromEntries(Object.entries(weights.params).map(([k, t]) => [k, t.data]));
    const step = await prepareStep({ ...wgradConfig(TINY), backend: "cpu" }, { params, batches });
    step.dispose();
    return step.firstLoss;
  };
  const [zeros, random] = [await loss("zeros"), await loss("random")];
  ok(Math.abs(zeros - random) > 1e-3, `losses ${zeros} and ${random}`);
});
