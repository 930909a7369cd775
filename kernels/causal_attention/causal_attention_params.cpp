// Validation of causal attention calls: one line naming the field, thrown before any launch
// (a call refused half way would leave its outputs half written).
#include "kernels/causal_attention/causal_attention_params.h"

#include <cstdint>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace seqscale {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("causal_attention: " + what); }

void require_positive(const char* field, std::int64_t v) {
  if (v < 1) fail(std::string(field) + " must be >= 1, got " + std::to_string(v));
}

void require_pointer(const char* field, const void* p) {
  if (p == nullptr) fail(std::string(field) + " is null");
}

// Strides positive; on tensor cores every row of 16-byte chunks must start 16-byte aligned
// (cp.async copies 16 bytes: the pointer and every stride a multiple of 8 elements of 2 bytes).
void check_view(const char* name, const void* p, const BshdStrides& given, const CausalAttentionShape& s, bool tc) {
  const BshdStrides st = resolve_strides(given, s);
  const std::string field = std::string(name) + "_strides";
  const std::pair<const char*, std::int64_t> parts[] = {{"batch", st.batch}, {"seq", st.seq}, {"head", st.head}};
  for (const auto& [part, value] : parts) {
    if (value < 1) fail(field + "." + part + " must be positive, got " + std::to_string(value));
    if (tc && value % 8 != 0) {
      fail(field + "." + part + " must be a multiple of 8 elements on the tensor-core path (16-byte cp.async rows), got " +
           std::to_string(value));
    }
  }
  if (tc && reinterpret_cast<std::uintptr_t>(p) % 16 != 0) fail(std::string(name) + " must be 16-byte aligned on the tensor-core path");
}

}  // namespace

void causal_attention_validate_fwd(const CausalAttentionParams& p, bool gpu) {
  const CausalAttentionShape& s = p.shape;
  require_positive("shape.batch", s.batch);
  require_positive("shape.seq", s.seq);
  require_positive("shape.heads", s.heads);
  if (!causal_attention_head_dim_supported(s.head_dim)) {
    fail("shape.head_dim must be 64, 96 or 128, got " + std::to_string(s.head_dim));
  }
  if (!gpu) {
    if (p.io != DType::kFp32) fail("io must be fp32 on the CPU backend, got " + std::string(dtype_name(p.io)));
  } else if (p.io != DType::kFp16 && p.io != DType::kBf16 && p.io != DType::kFp32) {
    fail("io must be fp16, bf16 or fp32, got " + std::string(dtype_name(p.io)));
  }
  const bool tc = gpu && causal_attention_uses_tc(p);
  if (tc && p.io == DType::kFp32) fail("kernel = tensor-core needs io fp16 or bf16, got fp32");
  // The tile arithmetic below cannot overflow: ceil(S / 64) * B * H is checked in doubles.
  const double blocks = static_cast<double>(s.batch) * static_cast<double>(s.heads) *
                        static_cast<double>((s.seq + 63) / 64);
  if (blocks > static_cast<double>(kCausalAttentionMaxBlocks)) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(0) << blocks;
    fail("shape.batch * shape.heads * ceil(shape.seq / 64) = " + os.str() + " blocks exceeds the 1-D grid limit 2^31 - 1");
  }
  require_pointer("q", p.q);
  require_pointer("k", p.k);
  require_pointer("v", p.v);
  require_pointer("o", p.o);
  require_pointer("lse", p.lse);
  check_view("q", p.q, p.q_strides, s, tc);
  check_view("k", p.k, p.k_strides, s, tc);
  check_view("v", p.v, p.v_strides, s, tc);
  check_view("o", p.o, p.o_strides, s, tc);
}

void causal_attention_validate_bwd(const CausalAttentionParams& p, const CausalAttentionGrads& g, bool gpu) {
  causal_attention_validate_fwd(p, gpu);
  const bool tc = gpu && causal_attention_uses_tc(p);
  require_pointer("d_o", g.d_o);
  require_pointer("dq", g.dq);
  require_pointer("dk", g.dk);
  require_pointer("dv", g.dv);
  require_pointer("row_dot", g.row_dot);
  if (tc && g.mode == CausalBwdMode::kAtomic && g.dq_accum == nullptr) {
    fail("dq_accum is null: the tensor-core backward in atomic mode needs B*H*S*D fp32 of workspace");
  }
  check_view("d_o", g.d_o, g.d_o_strides, p.shape, tc);
  check_view("dq", g.dq, g.dq_strides, p.shape, tc);
  check_view("dk", g.dk, g.dk_strides, p.shape, tc);
  check_view("dv", g.dv, g.dv_strides, p.shape, tc);
}

}  // namespace seqscale
