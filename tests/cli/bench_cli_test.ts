import { equal, ok, rejects } from "node:assert/strict";
import { benchCommand, type StepReport } from "../../cli/bench.ts";
import { UsageError } from "../../cli/_args.ts";

const TINY = [
  ...["--layers", "1", "--d-model", "16", "--heads", "2", "--seq", "8"],
  ...["--batch", "2", "--vocab", "16", "--steps", "3"],
];

/** Runs `benchCommand`, capturing console.log; returns the lines. */
/** The lines a bench run prints: stdout's, and (as `stderr`) stderr's. */
async function capture(args: string[]): Promise<string[] & { stderr: string[] }> {
  const lines = Object.assign([] as string[], { stderr: [] as string[] });
  const { log, error } = console;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => lines.stderr.push(a.join(" "));
  try {
    await benchCommand(args);
  } finally {
    console.log = log;
    console.error = error;
  }
  return lines;
}

function checkReport(report: StepReport, method: string, trainable: number): void {
  equal(report.method, method);
  equal(report.trainable_params, trainable);
  ok(report.total_params >= trainable);
  ok(typeof report.adapter === "string" && report.adapter.length > 0);
  ok(report.step_ms > 0 && Number.isFinite(report.step_ms), `step_ms ${report.step_ms}`);
  ok(report.first_step_ms >= report.compile_ms && report.compile_ms > 0);
  ok(report.steps_per_readback >= 1 && report.blocks * report.steps_per_readback >= 3);
  ok(report.tokens_per_s > 0 && Number.isFinite(report.tokens_per_s), `${report.tokens_per_s}`);
  ok(report.kernels_per_step > 0);
  ok(report.host_submit_ms >= 0 && Number.isFinite(report.host_submit_ms));
  equal(report.buffers_created_after_first, 0);
  ok(report.readback_ms >= 0);
  ok(report.readback_overhead_pct >= 0 && report.readback_overhead_pct < 100);
  equal(report.log_every, 25); // the trainer's default logEvery
  ok(Number.isFinite(report.loss_first) && Number.isFinite(report.loss_last));
  // Random tokens over 16 classes: the loss starts near ln 16.
  ok(Math.abs(report.loss_first - Math.log(16)) < 0.5, `loss ${report.loss_first}`);
}

for (
  const [method, extra, trainable] of [
    // VeRA: 2 targets × (out 16 + r 8); LoRA: 2 targets × r 4 × (in 16 + out 16).
    ["vera", ["--r", "8"], 2 * (16 + 8)],
    ["lora", ["--r", "4"], 2 * 4 * (16 + 16)],
    ["full", [], -1],
  ] as const
) {
  Deno.test(`bench step --method ${method}: the JSON report is complete and sane`, async () => {
    const lines = await capture(["step", "--method", method, ...extra, ...TINY, "--json"]);
    equal(lines.length, 1, "with --json, stdout holds the JSON report alone");
    ok(lines.stderr[0].startsWith("bench step:"), "the human-readable lines go to stderr");
    const report = JSON.parse(lines.at(-1)!) as StepReport;
    checkReport(report, method, trainable === -1 ? report.total_params : trainable);
    equal(report.backend, "webgpu");
    ok(report.gpu_bytes > 0);
    if (method === "full") equal(report.config.r, null);
  });
}

Deno.test("bench step --backend cpu runs the reference interpreter", async () => {
  const lines = await capture([
    "step",
    "--method",
    "vera",
    "--r",
    "4",
    ...TINY,
    "--backend",
    "cpu",
    "--json",
  ]);
  const report = JSON.parse(lines.at(-1)!) as StepReport;
  checkReport(report, "vera", 2 * (16 + 4));
  equal(report.backend, "cpu");
  equal(report.gpu_bytes, 0);
});

Deno.test("bench: bad command lines are UsageErrors that name the problem", async () => {
  const cases: [string[], RegExp][] = [
    [["step", "--method", "vera", "--bogus"], /bogus/],
    [["step"], /--method is required/],
    [["step", "--method", "dora"], /--method must be vera, lora or full/],
    [["--method", "vera"], /subcommand "step"/],
    [["stpe", "--method", "vera"], /subcommand "step", got "stpe"/],
    [["step", "--method", "vera", "--steps", "0"], /--steps must be an integer ≥ 1/],
    [
      ["step", "--method", "vera", "--d-model", "x"],
      /--d-model must be a decimal integer, got "x"/,
    ],
    [["step", "--method", "vera", "--heads", "3"], /--heads 3 does not divide --d-model 64/],
    [
      ["step", "--method", "vera", "--backend", "tpu"],
      /--backend must be auto, webgpu, wasm, cpu; got "tpu"/,
    ],
    [["step", "--method", "lora", "--targets", "nope"], /no module matched targetModules/],
    [["step", "--method", "vera", "--targets", ","], /--targets names no module/],
  ];
  for (const [args, message] of cases) {
    await rejects(() => benchCommand(args), (e: unknown) => {
      ok(e instanceof UsageError, `${args.join(" ")}: ${e}`);
      ok(message.test((e as Error).message), `${args.join(" ")}: ${(e as Error).message}`);
      return true;
    });
  }
});
