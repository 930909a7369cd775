// DeepSpeed-Ulysses (Jacobs et al. 2023) on the sequence-parallel group (kSequence):
// q, k and v arrive split along the sequence over the u ranks; an all-to-all swaps that
// for a split along heads, each rank attends over the whole sequence with its heads/u
// heads, and an all-to-all swaps back. Per attention core and pass, 4 all-to-alls of the
// rank's [s/u, b, width/tp] shards (es*s*b*width/(u*tp) bytes sent each), in this order:
//   forward   q, k, v in; o out          backward   dO in; dQ, dK, dV out
// width h for q, o, dO, dQ and kv_heads*head_dim for k, v, dK, dV (grouped-query
// attention sends its fewer key/value heads, as layers/transformer_layer runs it), so
// with kv_heads = heads the per-link volume 4Nh/P of the paper stays constant as N and P
// grow together (ANCHORS.md s3).
// Consumers: model/comm_volume.cc inside each layer's attention block;
// comm/strategies/ulysses.cc for its one attention.
#pragma once
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

// Bytes one all-to-all of q (kv = false) or of k or v (kv = true) sends.
double ulysses_all_to_all_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape, bool kv = false);

// One pass of one attention core (nothing unless sp=ulysses with sp_degree > 1).
void ulysses_attention(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph);

}  // namespace seqscale
