# Driver for the package.* ctest tests. Run with `cmake -P`; all inputs are
# passed as -D definitions by tests/package/CMakeLists.txt.
#
#   MODE=find_package      install the outer build into WORK_DIR/prefix, then consume it:
#                          find_package (without hiredis visible), version ranges and
#                          the pre-1.0 version policy, a newer Boost, unknown and
#                          missing components, a QUIET consumer that falls back,
#                          pkg-config (core only, then Redis), the C++20 check
#   MODE=add_subdirectory  consume the source tree with add_subdirectory()
#   MODE=fetchcontent      consume the source tree with FetchContent + OVERRIDE_FIND_PACKAGE
#   MODE=vcpkg             run ports/orchcore/portfile.cmake (vcpkg_emulation.cmake),
#                          consume the vcpkg-like tree; install its Debug and Release
#                          builds into one prefix
#   MODE=conan             build with the options conanfile.py passes (shared, Redis),
#                          check the shared libraries, the recipe's package_info
#                          against the installed targets, a Redis-only consumer and
#                          test_package (conan_emulation.py)
cmake_minimum_required(VERSION 3.25)

foreach(_var IN ITEMS MODE WORK_DIR ORCHCORE_SOURCE_DIR ORCHCORE_BINARY_DIR
                      PACKAGE_TEST_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "run_package_test.cmake: ${_var} is not set")
  endif()
endforeach()

# A fresh scratch area under the build tree for every run.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
if(NOT INSTALL_LIBDIR)
  set(INSTALL_LIBDIR lib)
endif()

# Common configure arguments: same generator/compiler/config as the outer build,
# and no package registries so only what we installed can be found.
set(_configure_args
  -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND _configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(NOT BUILD_CONFIG)
  set(BUILD_CONFIG Debug)
endif()
list(APPEND _configure_args "-DCMAKE_BUILD_TYPE=${BUILD_CONFIG}")
set(_config_args --config "${BUILD_CONFIG}")
# Two jobs per build: ctest may run two of these tests at once on two cores.
set(_build_args --parallel 2)

# Building orchcore itself from source: only the library.
set(_orchcore_lib_only
  -DORCHCORE_BUILD_TESTS=OFF -DORCHCORE_BUILD_BENCHMARKS=OFF -DORCHCORE_BUILD_EXAMPLES=OFF)

# pkg-config sees no system modules (so no hiredis) under this environment.
file(MAKE_DIRECTORY "${WORK_DIR}/no-pkgconfig")
set(_without_hiredis "${CMAKE_COMMAND}" -E env --unset=PKG_CONFIG_PATH
  "PKG_CONFIG_LIBDIR=${WORK_DIR}/no-pkgconfig")

# run(<name> [EXPECT_FAIL] [EXPECT_MESSAGE <regex>] [REJECT_MESSAGE <regex>] COMMAND <cmd...>)
function(run name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "EXPECT_FAIL" "EXPECT_MESSAGE;REJECT_MESSAGE" "COMMAND")
  message(STATUS "[${MODE}] ${name}")
  execute_process(
    COMMAND ${arg_COMMAND}
    RESULT_VARIABLE _rc
    OUTPUT_VARIABLE _out
    ERROR_VARIABLE _err)
  set(_log "command: ${arg_COMMAND}\nexit: ${_rc}\n--- stdout ---\n${_out}\n--- stderr ---\n${_err}")
  if(arg_EXPECT_FAIL)
    if(_rc EQUAL 0)
      message(FATAL_ERROR "[${MODE}] ${name}: expected failure, but it succeeded\n${_log}")
    endif()
  elseif(NOT _rc EQUAL 0)
    message(FATAL_ERROR "[${MODE}] ${name}: failed\n${_log}")
  endif()
  if(DEFINED arg_EXPECT_MESSAGE AND NOT "${_out}${_err}" MATCHES "${arg_EXPECT_MESSAGE}")
    message(FATAL_ERROR "[${MODE}] ${name}: output does not match '${arg_EXPECT_MESSAGE}'\n${_log}")
  endif()
  if(DEFINED arg_REJECT_MESSAGE AND "${_out}${_err}" MATCHES "${arg_REJECT_MESSAGE}")
    message(FATAL_ERROR "[${MODE}] ${name}: output matches '${arg_REJECT_MESSAGE}'\n${_log}")
  endif()
  set(run_output "${_out}${_err}" PARENT_SCOPE)
endfunction()

# consumer(<name> <source dir> <build dir> [BUILD] [RUN <exe>...] [ENV <cmd prefix>...]
#          [EXPECT_FAIL] [EXPECT_MESSAGE <regex>] [ARGS <configure args>...])
function(consumer name src bin)
  cmake_parse_arguments(PARSE_ARGV 3 arg "BUILD;EXPECT_FAIL" "EXPECT_MESSAGE" "RUN;ENV;ARGS")
  set(_expect "")
  if(arg_EXPECT_FAIL)
    list(APPEND _expect EXPECT_FAIL)
  endif()
  if(DEFINED arg_EXPECT_MESSAGE)
    list(APPEND _expect EXPECT_MESSAGE "${arg_EXPECT_MESSAGE}")
  endif()
  run("configure ${name}" ${_expect}
    COMMAND ${arg_ENV} "${CMAKE_COMMAND}" -S "${src}" -B "${bin}" ${_configure_args} ${arg_ARGS})
  set(run_output "${run_output}" PARENT_SCOPE)
  if(arg_BUILD)
    run("build ${name}" COMMAND ${arg_ENV} "${CMAKE_COMMAND}" --build "${bin}" ${_config_args} ${_build_args})
  endif()
  foreach(_exe IN LISTS arg_RUN)
    run("run ${name}: ${_exe}" COMMAND "${bin}/${_exe}")
  endforeach()
endfunction()

# assert_found_in(<build dir> <prefix>): the consumer used orchcore from <prefix>.
function(assert_found_in bin prefix)
  file(STRINGS "${bin}/CMakeCache.txt" _dir_line REGEX "^orchcore_DIR:")
  string(REGEX REPLACE "^[^=]*=" "" _orchcore_dir "${_dir_line}")
  file(REAL_PATH "${prefix}" _real_prefix)
  file(REAL_PATH "${_orchcore_dir}" _real_orchcore_dir)
  string(FIND "${_real_orchcore_dir}/" "${_real_prefix}/" _pos)
  if(NOT _pos EQUAL 0)
    message(FATAL_ERROR "consumer found orchcore at '${_orchcore_dir}', not in '${prefix}'")
  endif()
endfunction()

include("${PACKAGE_TEST_DIR}/package_modes.cmake")

if(MODE STREQUAL "find_package")
  test_find_package()
elseif(MODE STREQUAL "add_subdirectory")
  set(_bin "${WORK_DIR}/subdir_consumer")
  consumer("consumer (add_subdirectory)" "${PACKAGE_TEST_DIR}/subdir_consumer" "${_bin}"
    BUILD RUN subdir_consumer ARGS "-DORCHCORE_SOURCE_DIR=${ORCHCORE_SOURCE_DIR}")
elseif(MODE STREQUAL "fetchcontent")
  test_fetchcontent()
elseif(MODE STREQUAL "vcpkg")
  test_vcpkg()
elseif(MODE STREQUAL "conan")
  test_conan()
else()
  message(FATAL_ERROR "run_package_test.cmake: unknown MODE '${MODE}'")
endif()

message(STATUS "[${MODE}] all checks passed")
