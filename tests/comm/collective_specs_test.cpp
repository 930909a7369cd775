// Collective specs and benchmark helpers without MPI: bus-bandwidth factors (nccl-tests
// convention, ANCHORS section 4), size sweeps, buffer counts, the input pattern's
// exactness in half precision, and fp16/bf16 conversions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "comm/collectives/collective_bench.h"
#include "comm/collectives/collective_spec.h"
#include "comm/dtype_convert.h"

namespace seqscale::comm {
namespace {

// workloads/collective_sizes.h, the one home of both conventions (comm/ and model/ use it).
TEST(CollectiveSpecs, BusBandwidthFactors) {
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kAllReduce, 8), 2.0 * 7 / 8);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kAllGather, 8), 7.0 / 8);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kReduceScatter, 4), 3.0 / 4);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kAllToAll, 2), 0.5);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kBroadcast, 8), 1.0);
  EXPECT_DOUBLE_EQ(busbw_factor(Collective::kSendRecv, 8), 1.0);
  // One rank puts nothing on a link, whatever the collective.
  for (int k = 0; k < kNumCollectives; ++k) {
    EXPECT_DOUBLE_EQ(busbw_factor(static_cast<Collective>(k), 1), 0.0) << collective_name(static_cast<Collective>(k));
    EXPECT_DOUBLE_EQ(busbw_factor(static_cast<Collective>(k), 0), 0.0) << collective_name(static_cast<Collective>(k));
  }
}

TEST(CollectiveSpecs, SizeIsTheLargerBuffer) {
  // 1000 elements of bf16 per call argument on 4 ranks.
  EXPECT_EQ(collective_size_bytes(Collective::kAllReduce, 1000, DType::kBf16, 4), 2000);
  EXPECT_EQ(collective_size_bytes(Collective::kAllGather, 1000, DType::kBf16, 4), 8000);       // the gathered output
  EXPECT_EQ(collective_size_bytes(Collective::kReduceScatter, 1000, DType::kBf16, 4), 8000);   // the input
  EXPECT_EQ(collective_size_bytes(Collective::kAllToAll, 1000, DType::kBf16, 4), 8000);        // what one rank sends
  EXPECT_EQ(collective_size_bytes(Collective::kBroadcast, 1000, DType::kBf16, 4), 2000);
  EXPECT_EQ(collective_size_bytes(Collective::kSendRecv, 1000, DType::kFp32, 2), 4000);
}

// One spec per collective kind, registered under its collective_name(), and the spec's
// buffers for a size are that size (rounded to whole elements per rank) as its larger buffer.
TEST(CollectiveSpecs, EveryKindRegisteredOnceWithCounts) {
  EXPECT_EQ(registered_collectives().size(), static_cast<std::size_t>(kNumCollectives));
  for (int k = 0; k < kNumCollectives; ++k) {
    const auto kind = static_cast<Collective>(k);
    const CollectiveSpec* spec = find_collective(collective_name(kind));
    ASSERT_NE(spec, nullptr) << collective_name(kind);
    EXPECT_EQ(spec->kind, kind) << spec->name;
    for (int n : {1, 2, 3, 8}) {
      const std::int64_t size = 3 << 20;
      const CollectiveCounts c = spec->counts(size, DType::kFp32, n);
      const std::int64_t larger = std::max(c.send, c.recv) * 4;
      EXPECT_LE(larger, size) << spec->name << " n=" << n;
      EXPECT_GT(larger, size - 4 * n) << spec->name << " n=" << n;  // at most one element a rank dropped
    }
  }
  // 1 MiB of fp32 on 4 ranks, nccl-tests sizes.
  const auto ag = find_collective("all_gather")->counts(1 << 20, DType::kFp32, 4);
  EXPECT_EQ(ag.send, (1 << 18) / 4);
  EXPECT_EQ(ag.recv, 1 << 18);
  const auto rs = find_collective("reduce_scatter")->counts(1 << 20, DType::kFp32, 4);
  EXPECT_EQ(rs.send, 1 << 18);
  EXPECT_EQ(rs.recv, (1 << 18) / 4);
  const auto a2a = find_collective("all_to_all")->counts(1 << 20, DType::kBf16, 8);
  EXPECT_EQ(a2a.send, 1 << 19);
  EXPECT_EQ(find_collective("all_gather")->counts(8, DType::kFp32, 4).send, 0);  // too small: skipped
}

TEST(CollectiveSpecs, SizeSweepIsGeometric) {
  EXPECT_EQ(size_sweep(8, 512, 4), (std::vector<std::int64_t>{8, 32, 128, 512}));
  EXPECT_EQ(size_sweep(1 << 30, 1 << 30, 2), (std::vector<std::int64_t>{1 << 30}));
  EXPECT_THROW(size_sweep(8, 4, 2), std::invalid_argument);
  EXPECT_THROW(size_sweep(8, 64, 1), std::invalid_argument);
}

TEST(CollectiveSpecs, InputPatternIsExactInHalfPrecision) {
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin})
    for (std::int64_t i = 0; i < 64; ++i) {
      const double want = collective_reduce(i, 8, op, DType::kFp32);
      for (DType t : {DType::kFp16, DType::kBf16}) {
        std::uint64_t h = 0;  // wide enough for any dtype (keeps GCC's bounds analysis quiet)
        store_from_double(&h, 0, t, want);
        EXPECT_EQ(load_as_double(&h, 0, t), want) << dtype_name(t) << " " << reduce_op_name(op) << " " << i;
      }
    }
}

TEST(DtypeConvert, RoundTripsAndRounding) {
  for (float f : {0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f, 5.960464477539063e-08f, 3.14159f})
    EXPECT_NEAR(fp16_to_float(float_to_fp16(f)), f, std::abs(f) / 1024 + 1e-12) << f;
  EXPECT_TRUE(std::isinf(fp16_to_float(float_to_fp16(1e6f))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.f + 1.f / 256)), 1.f);           // ties to even
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.f + 3.f / 256)), 1.f + 4.f / 256);
  EXPECT_EQ(fp16_to_float(float_to_fp16(1.f + 1.f / 2048)), 1.f);          // ties to even
}

}  // namespace
}  // namespace seqscale::comm
