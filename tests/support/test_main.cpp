#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  // Tests make scratch folders named seqscale_<what>_<pid>[_...] in the temp directory.
  const std::string mark = "_" + std::to_string(::getpid());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("seqscale_", 0) == 0 && name.find(mark) != std::string::npos) std::filesystem::remove_all(e.path(), ec);
  }
  return rc;
}
