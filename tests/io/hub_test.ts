import assert from "node:assert/strict";
import { downloadModel, parseHubRef } from "../../io/hub.ts";
import { loadModel } from "../../nn/families.ts";
import { main } from "../../cli/main.ts";
import { serveHub } from "./_hub_server.ts";

const FIXTURE = new URL("../fixtures/hf/tiny-gpt2", import.meta.url).pathname;

Deno.test("hub download", async (t) => {
  const cache = await Deno.makeTempDir();
  const server = serveHub("org/tiny-gpt2", FIXTURE, ["main", "v1"]);
  try {
    await t.step("references", () => {
      assert.deepEqual(parseHubRef("hf:org/name"), { repo: "org/name", revision: "main" });
      assert.deepEqual(parseHubRef("hf:org/name@v1.0"), { repo: "org/name", revision: "v1.0" });
      assert.equal(parseHubRef("./org/name"), undefined);
      assert.throws(() => parseHubRef("hf:name-only"), /bad hub reference "hf:name-only"/);
    });

    await t.step("downloads config, tokenizer and weights into the cache and loads", async () => {
      const dir = await downloadModel({ repo: "org/tiny-gpt2", revision: "main" }, {
        endpoint: server.url,
        cacheDir: cache,
      });
      assert.ok(dir.startsWith(`${cache}/models--org--tiny-gpt2/snapshots/`), dir);
      for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
        assert.deepEqual(
          await Deno.readFile(`${dir}/${f}`),
          await Deno.readFile(`${FIXTURE}/${f}`),
        );
      }
      assert.ok(server.requests.some((r) => r.startsWith("GET /org/tiny-gpt2/resolve/")));
      const model = await loadModel(dir);
      assert.equal(model.family.name, "gpt2");
    });

    await t.step("a server with only the resolve endpoint (sharded Llama)", async () => {
      const llama = new URL("../fixtures/hf/tiny-llama", import.meta.url).pathname;
      const plain = serveHub("org/llama", llama, ["main"], { infoApi: false });
      try {
        const dir = await downloadModel({ repo: "org/llama", revision: "main" }, {
          endpoint: plain.url,
          cacheDir: cache,
        });
        for (const f of ["model-00002-of-00003.safetensors", "tokenizer.json"]) {
          assert.deepEqual(
            await Deno.readFile(`${dir}/${f}`),
            await Deno.readFile(`${llama}/${f}`),
          );
        }
        assert.equal((await loadModel(dir)).family.name, "llama");
        assert.ok(plain.requests.every((r) => !r.includes("/api/") || r.startsWith("GET")));
      } finally {
        await plain.close();
      }
    });

    await t.step("a cached model is used when the server cannot be reached", async () => {
      const dir = await downloadModel({ repo: "org/tiny-gpt2", revision: "main" }, {
        endpoint: "http://127.0.0.1:9",
        cacheDir: cache,
      });
      assert.ok((await Deno.stat(`${dir}/model.safetensors`)).isFile);
    });

    await t.step("offline and not cached: one line that says how to pass a directory", async () => {
      const error = await downloadModel({ repo: "org/other", revision: "main" }, {
        endpoint: "http://127.0.0.1:9",
        cacheDir: cache,
      }).then(() => null, (e: Error) => e);
      assert.match(
        error!.message,
        /^hf:org\/other@main: cannot reach http:\/\/127.0.0.1:9 .*--base path\/to\/model/,
      );
      assert.ok(!error!.message.includes("\n"));
    });

    await t.step("cli: --base hf:ORG/NAME@REV with HF_ENDPOINT and WGRAD_CACHE", async () => {
      const data = `${cache}/doc.txt`;
      await Deno.writeTextFile(data, "hello world");
      const saved = { endpoint: Deno.env.get("HF_ENDPOINT"), cache: Deno.env.get("WGRAD_CACHE") };
      const out: string[] = [];
      const { log } = console;
      Deno.env.set("HF_ENDPOINT", server.url);
      Deno.env.set("WGRAD_CACHE", `${cache}/wgrad`);
      console.log = (...a: unknown[]) => out.push(a.join(" "));
      try {
        const code = await main([
          ...[
            "eval",
            "--base",
            "hf:org/tiny-gpt2@v1",
            "--data",
            data,
            "--backend",
            "cpu",
            "--json",
          ],
        ]);
        assert.equal(code, 0);
      } finally {
        console.log = log;
        for (const [k, v] of [["HF_ENDPOINT", saved.endpoint], ["WGRAD_CACHE", saved.cache]]) {
          if (v === undefined) Deno.env.delete(k!);
          else Deno.env.set(k!, v);
        }
      }
      assert.equal(out.length, 1, "only the JSON document on stdout");
      assert.equal(JSON.parse(out[0]).task, "lm");
      assert.ok((await Deno.stat(`${cache}/wgrad/hub/models--org--tiny-gpt2/refs/v1`)).isFile);
      // merge from the cache (its files are links to blobs) copies the tokenizer files too.
      const adapter = `${cache}/adapter`;
      Deno.env.set("WGRAD_CACHE", `${cache}/wgrad`);
      Deno.env.set("HF_ENDPOINT", "http://127.0.0.1:9");
      try {
        await Deno.writeTextFile(
          `${cache}/two.jsonl`,
          '{"text":"a b","label":0}\n{"text":"c","label":1}\n',
        );
        const quiet = { log: console.log, error: console.error };
        console.log = console.error = () => {};
        try {
          assert.equal(
            await main([
              ...["finetune", "--base", "hf:org/tiny-gpt2@v1", "--data", `${cache}/two.jsonl`],
              ...["--method", "lora", "--r", "2", "--steps", "1", "--batch", "2", "--seq", "8"],
              ...["--backend", "cpu", "--out", `${cache}/run`],
            ]),
            0,
          );
          await Deno.rename(`${cache}/run/adapter`, adapter);
          assert.equal(
            await main([
              ...["merge", "--base", "hf:org/tiny-gpt2@v1", "--adapter", adapter],
              ...["--out", `${cache}/merged`, "--backend", "cpu"],
            ]),
            0,
          );
        } finally {
          Object.assign(console, quiet);
        }
      } finally {
        for (const [k, v] of [["HF_ENDPOINT", saved.endpoint], ["WGRAD_CACHE", saved.cache]]) {
          if (v === undefined) Deno.env.delete(k!);
          else Deno.env.set(k!, v);
        }
      }
      const config = JSON.parse(await Deno.readTextFile(`${adapter}/adapter_config.json`));
      assert.equal(config.base_model_name_or_path, "org/tiny-gpt2");
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        assert.ok((await Deno.lstat(`${cache}/merged/${f}`)).isFile, f);
      }
    });
  } finally {
    await server.close();
    await Deno.remove(cache, { recursive: true });
  }
});
