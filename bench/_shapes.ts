/**
 * The large model shapes the generation and fine-tuning benchmarks build with random weights, as
 * Hugging Face `config.json` objects.
 *
 * @module
 */

/** Shape name → `config.json` fields. */
export const SHAPES: Record<string, Record<string, unknown>> = {
  "gpt2-small": {
    model_type: "gpt2",
    vocab_size: 50257,
    n_positions: 1024,
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
  },
  // GPT-2-small's body with the vocabulary cut so the tied embedding (40,000 × 768 f32) fits the
  // 128 MiB storage binding of Mesa llvmpipe; the full 50,257 rows need 147 MiB.
  "gpt2-small-v40k": {
    model_type: "gpt2",
    vocab_size: 40000,
    n_positions: 1024,
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
  },
  "llama-100m": {
    model_type: "llama",
    vocab_size: 32000,
    max_position_embeddings: 2048,
    hidden_size: 768,
    intermediate_size: 2048,
    num_hidden_layers: 10,
    num_attention_heads: 12,
    num_key_value_heads: 4,
    tie_word_embeddings: true,
  },
};
