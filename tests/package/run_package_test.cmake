# Driver for the package.* ctest tests. Run with `cmake -P`; all inputs are
# passed as -D definitions by tests/package/CMakeLists.txt.
#
#   MODE=find_package      install the outer build into WORK_DIR/prefix, then
#                          - consume it with find_package(orchcore 0.1 CONFIG REQUIRED)
#                          - check COMPONENTS bogus fails with a clear message
#                          - check the redis component is reported correctly
#                          - consume it with pkg-config
#   MODE=add_subdirectory  consume the source tree with add_subdirectory()
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
if(BUILD_CONFIG)
  list(APPEND _configure_args "-DCMAKE_BUILD_TYPE=${BUILD_CONFIG}")
  set(_config_args --config "${BUILD_CONFIG}")
else()
  set(_config_args "")
endif()

# run(<name> [EXPECT_FAIL] [EXPECT_MESSAGE <regex>] COMMAND <cmd...>)
function(run name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "EXPECT_FAIL" "EXPECT_MESSAGE" "COMMAND")
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
  set(run_output "${_out}${_err}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "find_package")
  set(_prefix "${WORK_DIR}/prefix")
  run("install into ${_prefix}"
    COMMAND "${CMAKE_COMMAND}" --install "${ORCHCORE_BINARY_DIR}" --prefix "${_prefix}" ${_config_args})

  foreach(_f IN ITEMS include/orchcore/orchcore.hpp)
    if(NOT EXISTS "${_prefix}/${_f}")
      message(FATAL_ERROR "install did not produce ${_prefix}/${_f}")
    endif()
  endforeach()

  # 1. find_package + link + run.
  set(_bin "${WORK_DIR}/consumer")
  run("configure consumer (find_package)"
    COMMAND "${CMAKE_COMMAND}" -S "${PACKAGE_TEST_DIR}/consumer" -B "${_bin}"
      ${_configure_args} "-DCMAKE_PREFIX_PATH=${_prefix}")
  file(STRINGS "${_bin}/CMakeCache.txt" _dir_line REGEX "^orchcore_DIR:")
  string(REGEX REPLACE "^[^=]*=" "" _orchcore_dir "${_dir_line}")
  file(REAL_PATH "${_prefix}" _real_prefix)
  file(REAL_PATH "${_orchcore_dir}" _real_orchcore_dir)
  string(FIND "${_real_orchcore_dir}" "${_real_prefix}/" _pos)
  if(NOT _pos EQUAL 0)
    message(FATAL_ERROR "consumer found orchcore at '${_orchcore_dir}', not in '${_prefix}'")
  endif()
  run("build consumer (find_package)"
    COMMAND "${CMAKE_COMMAND}" --build "${_bin}" ${_config_args})
  run("run consumer (find_package)" COMMAND "${_bin}/consumer")

  # 2. Unknown components must fail clearly.
  run("find_package COMPONENTS bogus fails"
    EXPECT_FAIL
    EXPECT_MESSAGE "orchcore: unknown component 'bogus' \\(known: redis\\)"
    COMMAND "${CMAKE_COMMAND}" -S "${PACKAGE_TEST_DIR}/consumer" -B "${WORK_DIR}/consumer-bogus"
      ${_configure_args} "-DCMAKE_PREFIX_PATH=${_prefix}" "-DORCHCORE_TEST_COMPONENTS=bogus")

  # 3. The redis component is found iff it was built.
  file(GLOB_RECURSE _targets_files "${_prefix}/*/orchcoreTargets.cmake")
  set(_have_redis FALSE)
  foreach(_tf IN LISTS _targets_files)
    file(STRINGS "${_tf}" _redis_lines REGEX "orchcore::redis")
    if(_redis_lines)
      set(_have_redis TRUE)
    endif()
  endforeach()
  if(_have_redis)
    run("find_package COMPONENTS redis succeeds (redis built)"
      COMMAND "${CMAKE_COMMAND}" -S "${PACKAGE_TEST_DIR}/consumer" -B "${WORK_DIR}/consumer-redis"
        ${_configure_args} "-DCMAKE_PREFIX_PATH=${_prefix}" "-DORCHCORE_TEST_COMPONENTS=redis")
  else()
    run("find_package COMPONENTS redis fails (redis not built)"
      EXPECT_FAIL
      EXPECT_MESSAGE "orchcore: component 'redis' is not available"
      COMMAND "${CMAKE_COMMAND}" -S "${PACKAGE_TEST_DIR}/consumer" -B "${WORK_DIR}/consumer-redis"
        ${_configure_args} "-DCMAKE_PREFIX_PATH=${_prefix}" "-DORCHCORE_TEST_COMPONENTS=redis")
    run("find_package OPTIONAL_COMPONENTS redis succeeds with orchcore_redis_FOUND=FALSE"
      EXPECT_MESSAGE "orchcore_redis_FOUND=FALSE"
      COMMAND "${CMAKE_COMMAND}" -S "${PACKAGE_TEST_DIR}/consumer" -B "${WORK_DIR}/consumer-redis-opt"
        ${_configure_args} "-DCMAKE_PREFIX_PATH=${_prefix}" "-DORCHCORE_TEST_OPTIONAL_COMPONENTS=redis")
  endif()

  # 4. pkg-config.
  find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf REQUIRED)
  if(NOT INSTALL_LIBDIR)
    set(INSTALL_LIBDIR lib)
  endif()
  if(IS_ABSOLUTE "${INSTALL_LIBDIR}")
    message(FATAL_ERROR "CMAKE_INSTALL_LIBDIR is absolute (${INSTALL_LIBDIR}); cannot relocate the install")
  endif()
  set(ENV{PKG_CONFIG_PATH} "${_prefix}/${INSTALL_LIBDIR}/pkgconfig")
  run("pkg-config --modversion orchcore"
    EXPECT_MESSAGE "^0\\.1\\.0"
    COMMAND "${PKG_CONFIG_EXECUTABLE}" --modversion orchcore)
  run("pkg-config --cflags --libs orchcore"
    COMMAND "${PKG_CONFIG_EXECUTABLE}" --cflags --libs orchcore)
  string(STRIP "${run_output}" _pc_flags)
  separate_arguments(_pc_flags UNIX_COMMAND "${_pc_flags}")
  run("compile consumer (pkg-config)"
    COMMAND "${CXX_COMPILER}" -std=c++20 "${PACKAGE_TEST_DIR}/consumer/main.cpp"
      ${_pc_flags} -o "${WORK_DIR}/consumer-pkgconfig")
  run("run consumer (pkg-config)" COMMAND "${WORK_DIR}/consumer-pkgconfig")

elseif(MODE STREQUAL "add_subdirectory")
  set(_bin "${WORK_DIR}/subdir_consumer")
  run("configure consumer (add_subdirectory)"
    COMMAND "${CMAKE_COMMAND}" -S "${PACKAGE_TEST_DIR}/subdir_consumer" -B "${_bin}"
      ${_configure_args} "-DORCHCORE_SOURCE_DIR=${ORCHCORE_SOURCE_DIR}")
  run("build consumer (add_subdirectory)"
    COMMAND "${CMAKE_COMMAND}" --build "${_bin}" ${_config_args})
  run("run consumer (add_subdirectory)" COMMAND "${_bin}/subdir_consumer")

else()
  message(FATAL_ERROR "run_package_test.cmake: unknown MODE '${MODE}'")
endif()

message(STATUS "[${MODE}] all checks passed")
