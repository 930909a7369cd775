#include "kernels/gemm/gemm_ref.h"

#include <stdexcept>

#include "kernels/bias_gelu/bias_gelu_ref.h"

namespace seqscale {

void gemm_ref(const float* a, const float* b, double* c, std::int64_t m, std::int64_t n, std::int64_t k) {
  for (std::int64_t i = 0; i < m; ++i) {
    double* ci = c + i * n;
    for (std::int64_t j = 0; j < n; ++j) ci[j] = 0;
    for (std::int64_t p = 0; p < k; ++p) {
      const double aip = a[i * k + p];
      const float* bp = b + p * n;
      for (std::int64_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
    }
  }
}

void gemm_epilogue_ref(GemmEpilogue e, double* c, std::int64_t m, std::int64_t n, const float* bias,
                       const float* aux_in, double* aux_out, double* bias_grad) {
  if (e == GemmEpilogue::kBias && !bias) throw std::invalid_argument("gemm_epilogue_ref: bias is null");
  if (e == GemmEpilogue::kGeluAux && !aux_out) throw std::invalid_argument("gemm_epilogue_ref: aux_out is null");
  if (e == GemmEpilogue::kDGeluBgrad && !aux_in) throw std::invalid_argument("gemm_epilogue_ref: aux_in is null");
  if (bias_grad) {
    for (std::int64_t j = 0; j < n; ++j) bias_grad[j] = 0;
  }
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double& v = c[i * n + j];
      switch (e) {
        case GemmEpilogue::kNone: break;
        case GemmEpilogue::kBias: v += bias[j]; break;
        case GemmEpilogue::kGeluAux:
          aux_out[i * n + j] = v + (bias ? bias[j] : 0.0);
          v = gelu_tanh_ref(aux_out[i * n + j]);
          break;
        case GemmEpilogue::kDGeluBgrad:
          v *= gelu_tanh_grad_ref(aux_in[i * n + j]);
          if (bias_grad) bias_grad[j] += v;
          break;
      }
    }
  }
}

}  // namespace seqscale
