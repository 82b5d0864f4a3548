# orchcore_set_warnings(<target>)
#
# Adds the project's warning flags to <target>. The flags are PRIVATE (or, for
# INTERFACE libraries, not added at all) so they never propagate to consumers.
# -Werror is added when ORCHCORE_WARNINGS_AS_ERRORS is ON.
include_guard(GLOBAL)

function(orchcore_set_warnings target)
  get_target_property(_type ${target} TYPE)
  if(_type STREQUAL "INTERFACE_LIBRARY")
    return()
  endif()

  set(_gnu_like "$<OR:$<CXX_COMPILER_ID:GNU>,$<CXX_COMPILER_ID:Clang>,$<CXX_COMPILER_ID:AppleClang>>")
  target_compile_options(${target} PRIVATE
    "$<${_gnu_like}:-Wall;-Wextra;-Wpedantic>"
  )
  # g++ 12 under -fsanitize=thread warns that TSan does not model
  # std::atomic_thread_fence, for every fence in Boost.Asio's headers.
  # orchcore's own one fence has an RMW variant under TSan
  # (ring_admission_queue.hpp), so the warning says nothing about this code.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
    target_compile_options(${target} PRIVATE -Wno-tsan)
  endif()
  if(ORCHCORE_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE "$<${_gnu_like}:-Werror>")
  endif()
endfunction()
