// One random seed per test, printed and replayable. A test that draws random inputs calls
// test_seed() once (after SEQSCALE_REQUIRE_GPU() in a GPU test) and derives every generator
// it needs from that one value. Each call prints
//   [ SEED ] Dtypes/SoftmaxGpu.ForwardInPlaceAndBackwardMatchReference/fp32: SEQSCALE_TEST_SEED=1234
// and records the seed as the test's "seed" property (in --gtest_output=xml/json), so a
// failure seen once, on a GPU or in CI, replays exactly on any machine:
//   SEQSCALE_TEST_SEED=1234 ./kernels_tests --gtest_filter='Dtypes/SoftmaxGpu.*/fp32'
#pragma once
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

namespace seqscale::testing_support {

// SEQSCALE_TEST_SEED (decimal, 0 .. 2^64 - 1) when set, otherwise a fresh draw from
// std::random_device. A value that is not a decimal number throws, which fails the calling
// test with that one line before it draws anything.
inline std::uint64_t test_seed() {
  std::uint64_t seed = 0;
  const char* env = std::getenv("SEQSCALE_TEST_SEED");
  if (env != nullptr && *env != '\0') {
    const std::string text = env;
    bool ok = text.size() <= 20;
    for (char c : text) ok = ok && c >= '0' && c <= '9';
    if (ok) {
      // Digits only, at most 20 of them: strtoull cannot fail except by overflow (ERANGE).
      errno = 0;
      seed = std::strtoull(text.c_str(), nullptr, 10);
      ok = errno == 0;
    }
    if (!ok) throw std::invalid_argument("SEQSCALE_TEST_SEED='" + text + "' is not a decimal number in [0, 2^64)");
  } else {
    seed = std::random_device{}();  // 32 bits: short to type, and std::mt19937 keeps 32 anyway
  }
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name =
      info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : std::string("(outside a test)");
  std::printf("[ SEED ] %s: SEQSCALE_TEST_SEED=%llu\n", name.c_str(), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  if (info != nullptr) ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

}  // namespace seqscale::testing_support
