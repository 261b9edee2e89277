// The partitioners as a trainer embeds them: README.md ("Three examples for a consumer") shows
// the lines between the readme-begin and readme-end markers, and the test
// embedding_readme_in_sync keeps them identical.
// readme-begin
#include <trainperf/trainperf.hpp>

#include <iostream>

int main() {
  using namespace trainperf;
  for (const stage_layers& s : partition_layers(32, {.pp = 4}))  // 32 layers over 4 pipeline stages
    std::cout << "stage " << s.stage << ": layers " << s.first_layer << "-" << s.first_layer + s.layers - 1
              << (s.embedding ? " + embedding" : "") << (s.output ? " + output layer" : "") << '\n';
  for (const tensor_shard& t : tensor_shards(get_preset("llama2-7b").spec, 4))  // one of 4 tensor-parallel ranks
    std::cout << t.name << ": " << t.rows << " x " << t.cols << " -> " << t.shard_rows << " x " << t.shard_cols << '\n';
  // Global batch 1024, micro batch 4, 8 data-parallel ranks: what rank 2 reads in micro-step 1 of step 3.
  const sample_range r = data_shard(1024, 4, 8, /*step=*/3, /*micro_step=*/1, /*rank=*/2);
  std::cout << "samples " << r.first << "-" << r.first + r.count - 1 << '\n';
}
// readme-end
//
// The output, by hand (the test embedding_partition pins it):
//   32 layers / 4 stages = 8 each: stage s holds layers 8s .. 8s + 7; the embedding is on the
//   first stage, the output layer and loss on the last.
//   llama2-7b: hidden 4096, 32 heads of 128 with as many KV heads (so Q, K and V are 4096 wide
//   each), SwiGLU ffn 11008, vocabulary 32000 unpadded, untied output layer. Weights are
//   [in, out]; column-parallel ones split out by 4, row-parallel ones split in by 4, the
//   embedding splits its vocabulary rows by 4:
//     embedding      32000 x 4096          -> 8000 x 4096
//     attention.qkv  4096 x (3 x 4096)     -> 4096 x 3072
//     attention.out  4096 x 4096           -> 1024 x 4096
//     mlp.gate_up    4096 x (2 x 11008)    -> 4096 x 5504
//     mlp.down       11008 x 4096          -> 2752 x 4096
//     output         4096 x 32000          -> 4096 x 8000
//   Samples: each step reads 1024 samples, each micro-step 4 x 8 = 32 of them, rank r the r-th 4:
//   3 x 1024 + 1 x 32 + 2 x 4 = 3112, so samples 3112-3115.
