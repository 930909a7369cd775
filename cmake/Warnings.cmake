# -Werror applies to our code only; third-party headers come in as SYSTEM includes.
# -Wno-restrict: GCC 12 false positive on std::string concatenation at -O3 (GCC bug 105329).
function(seqscale_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Werror -Wno-error=deprecated-declarations -Wno-restrict>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Werror --Werror=all-warnings>)
endfunction()
