import { pretrainCommand } from "../../cli/train.ts";

async function quietly(run: () => Promise<void>): Promise<void> {
  const { log, error } = console;
  console.log = () => {};
  console.error = () => {};
  try {
    await run();
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** A tiny byte-level base model, pretrained for two steps on the CPU. */
export async function tinyBase(dir: string): Promise<string> {
  const base = `${dir}/base.safetensors`;
  await quietly(() =>
    pretrainCommand([
      ...["--data", "names", "--out", base, "--layers", "1", "--d-model", "8", "--heads", "2"],
      ...["--seq", "16", "--batch", "2", "--steps", "2", "--eval-batches", "1", "--backend", "cpu"],
    ], { progress: "none" })
  );
  return base;
}

/** Three-class data: colours, fruit and numbers, labels as strings. */
export function threeClassJsonl(n = 30): string {
  const words = {
    colour: ["red", "blue", "green"],
    fruit: ["apple", "pear", "fig"],
    number: ["one", "two", "six"],
  };
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const [label, list] = Object.entries(words)[i % 3];
    rows.push(JSON.stringify({ text: `${list[i % 3]} ${i}`, label }));
  }
  return rows.join("\n") + "\n";
}
