/**
 * A run that sends itself SIGINT during step 5 (`deno test` handles SIGINT itself, so
 * progress_test.ts runs this in a process of its own). Prints the interrupted step as JSON.
 */
import { param, trace } from "../../compiler/trace.ts";
import { adamw, trainStep } from "../../train/optim.ts";
import { constant } from "../../train/schedule.ts";
import { cpuRunner, type RunnerFactory } from "../../train/runner.ts";
import { train, TrainInterrupted, type TrainOptions } from "../../train/trainer.ts";

const model = trace(
  (x) => ({ loss: x.sub(param("w", [2])).square().sum() }),
  [{ name: "x", shape: [2] }],
);
const step = trainStep(model, { optimizer: adamw({ weightDecay: 0 }) });

/** The run of the test: 40 steps of a deterministic data source whose state is its position. */
export function interruptOptions(dir: string, runner?: RunnerFactory): TrainOptions {
  let taken = 0;
  return {
    step,
    params: { w: new Float32Array(2) },
    data: (state) => {
      taken = (state as { taken?: number } | undefined)?.taken ?? 0;
      return {
        next: () => ({ x: [1 + (taken++ % 3), -1] }),
        get state() {
          return { taken };
        },
      };
    },
    steps: 40,
    lr: constant(0.05),
    logEvery: 5,
    outDir: dir,
    checkpoint: { path: `${dir}/checkpoint.safetensors`, every: 100, config: { run: 1 } },
    stopOnInterrupt: true,
    progress: "none",
    ...(runner === undefined ? {} : { runner }),
  };
}

if (import.meta.main) {
  let runs = 0;
  const signalling: RunnerFactory = (graph) => {
    const inner = cpuRunner(graph);
    return {
      ...inner,
      async run(inputs, opts) {
        if (++runs === 5) {
          Deno.kill(Deno.pid, "SIGINT");
          await new Promise((resolve) => setTimeout(resolve, 100)); // the signal is delivered
        }
        return inner.run(inputs, opts);
      },
    };
  };
  try {
    await train(interruptOptions(Deno.args[0], signalling));
    console.log(JSON.stringify({ finished: true }));
  } catch (e) {
    if (!(e instanceof TrainInterrupted)) throw e;
    console.log(JSON.stringify({ step: e.step, checkpoint: e.checkpoint, message: e.message }));
  }
}
