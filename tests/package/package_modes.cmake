# The test modes of run_package_test.cmake (included by it; uses its run(),
# consumer() and settings).

# --- find_package: the installed package ------------------------------------
function(test_find_package)
  set(_prefix "${WORK_DIR}/prefix")
  run("install into ${_prefix}"
    COMMAND "${CMAKE_COMMAND}" --install "${ORCHCORE_BINARY_DIR}" --prefix "${_prefix}" ${_config_args})
  if(NOT EXISTS "${_prefix}/include/orchcore/orchcore.hpp")
    message(FATAL_ERROR "install did not produce ${_prefix}/include/orchcore/orchcore.hpp")
  endif()
  set(_c "${PACKAGE_TEST_DIR}/consumer")
  set(_at "-DCMAKE_PREFIX_PATH=${_prefix}")

  # A core-only consumer builds and runs where hiredis is not installed.
  consumer("core consumer (no hiredis)" "${_c}" "${WORK_DIR}/consumer"
    BUILD RUN consumer ENV ${_without_hiredis} ARGS "${_at}")
  assert_found_in("${WORK_DIR}/consumer" "${_prefix}")

  _find_package_versions("${_c}" "${_at}")
  _find_package_newer_boost("${_c}" "${_prefix}")
  _find_package_components("${_c}" "${_prefix}")
  _find_package_pkgconfig("${_prefix}")
endfunction()

function(_find_package_versions c at)
  consumer("version range 0.1...<0.2" "${c}" "${WORK_DIR}/v-range"
    ARGS "${at}" "-DORCHCORE_TEST_VERSION=0.1...<0.2")
  # Before 1.0 a minor release may break: 0.1.x satisfies neither 0.0 nor 0.2.
  consumer("version 0.0 is not satisfied by 0.1" "${c}" "${WORK_DIR}/v-0.0"
    EXPECT_FAIL EXPECT_MESSAGE "compatible with requested version.*0\\.0"
    ARGS "${at}" "-DORCHCORE_TEST_VERSION=0.0")
  consumer("version 0.2 is not satisfied by 0.1" "${c}" "${WORK_DIR}/v-0.2"
    EXPECT_FAIL EXPECT_MESSAGE "compatible with requested version.*0\\.2"
    ARGS "${at}" "-DORCHCORE_TEST_VERSION=0.2")
endfunction()

# An application on Boost 1.83: a stand-in config reports 1.83.0 (Debian's
# version logic) and provides 1.81's targets; the real 1.81 config is hidden.
function(_find_package_newer_boost c prefix)
  if(NOT BOOST_DIR OR NOT EXISTS "${BOOST_DIR}/BoostConfig.cmake")
    message(STATUS "[${MODE}] skipped the newer-Boost check: Boost_DIR '${BOOST_DIR}' has no BoostConfig.cmake")
    return()
  endif()
  set(_fake "${WORK_DIR}/boost-1.83/lib/cmake/Boost-1.83.0")
  file(WRITE "${_fake}/BoostConfig.cmake"
    "set(Boost_VERSION 1.81.0)\ninclude(\"${BOOST_DIR}/BoostConfig.cmake\")\nset(Boost_VERSION 1.83.0)\n")
  file(WRITE "${_fake}/BoostConfigVersion.cmake" [=[
set(PACKAGE_VERSION 1.83.0)
if(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
]=])
  # Hidden under both names of a merged-/usr system (/usr/lib and /lib).
  set(_hide "${BOOST_DIR}")
  if(BOOST_DIR MATCHES "^/usr(/.*)$")
    list(APPEND _hide "${CMAKE_MATCH_1}")
  endif()
  consumer("application on Boost 1.83" "${c}" "${WORK_DIR}/boost-1.83-consumer"
    EXPECT_MESSAGE "application uses Boost 1\\.83\\.0"
    ARGS "-DCMAKE_PREFIX_PATH=${WORK_DIR}/boost-1.83;${prefix}" "-DCMAKE_IGNORE_PATH=${_hide}"
         -DORCHCORE_TEST_BOOST_VERSION=1.83)
endfunction()

function(_find_package_components c prefix)
  set(_at "-DCMAKE_PREFIX_PATH=${prefix}")
  consumer("COMPONENTS bogus fails" "${c}" "${WORK_DIR}/c-bogus"
    EXPECT_FAIL EXPECT_MESSAGE "orchcore: unknown component 'bogus' \\(known: redis, yaml\\)"
    ARGS "${_at}" -DORCHCORE_TEST_COMPONENTS=bogus)
  # An application for which orchcore with Redis is optional falls back.
  consumer("QUIET consumer falls back (no hiredis)" "${PACKAGE_TEST_DIR}/optional_consumer"
    "${WORK_DIR}/optional" ENV ${_without_hiredis}
    EXPECT_MESSAGE "orchcore-optional: orchcore with Redis not available, falling back"
    ARGS "${_at}")
  consumer("OPTIONAL_COMPONENTS redis (no hiredis)" "${c}" "${WORK_DIR}/c-redis-opt"
    ENV ${_without_hiredis} EXPECT_MESSAGE "orchcore_redis_FOUND=FALSE"
    ARGS "${_at}" -DORCHCORE_TEST_OPTIONAL_COMPONENTS=redis)
  file(GLOB _redis_targets "${prefix}/*/cmake/orchcore/orchcoreRedisTargets.cmake")
  if(NOT _redis_targets)
    consumer("COMPONENTS redis fails (redis not built)" "${c}" "${WORK_DIR}/c-redis"
      EXPECT_FAIL EXPECT_MESSAGE "orchcore: component 'redis' is not available"
      ARGS "${_at}" -DORCHCORE_TEST_COMPONENTS=redis)
    return()
  endif()
  consumer("COMPONENTS redis fails naming hiredis (no hiredis)" "${c}" "${WORK_DIR}/c-redis-nohiredis"
    ENV ${_without_hiredis} EXPECT_FAIL
    EXPECT_MESSAGE "orchcore: component 'redis' is not available: it needs hiredis"
    ARGS "${_at}" -DORCHCORE_TEST_COMPONENTS=redis)
  consumer("COMPONENTS redis" "${c}" "${WORK_DIR}/c-redis"
    ARGS "${_at}" -DORCHCORE_TEST_COMPONENTS=redis)
endfunction()

function(_find_package_pkgconfig prefix)
  find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf REQUIRED)
  if(IS_ABSOLUTE "${INSTALL_LIBDIR}")
    message(FATAL_ERROR "CMAKE_INSTALL_LIBDIR is absolute (${INSTALL_LIBDIR}); cannot relocate the install")
  endif()
  set(_pcdir "${prefix}/${INSTALL_LIBDIR}/pkgconfig")
  # Only orchcore's own modules are visible: the core must not need hiredis.
  set(_pc "${CMAKE_COMMAND}" -E env --unset=PKG_CONFIG_PATH "PKG_CONFIG_LIBDIR=${_pcdir}" "${PKG_CONFIG_EXECUTABLE}")
  run("pkg-config --modversion orchcore" EXPECT_MESSAGE "^0\\.1\\.0" COMMAND ${_pc} --modversion orchcore)
  run("pkg-config --cflags orchcore" REJECT_MESSAGE "hiredis" COMMAND ${_pc} --cflags orchcore)
  string(STRIP "${run_output}" _cflags)
  separate_arguments(_cflags UNIX_COMMAND "${_cflags}")
  run("pkg-config --libs orchcore" REJECT_MESSAGE "hiredis|redis" COMMAND ${_pc} --libs orchcore)
  string(STRIP "${run_output}" _libs)
  separate_arguments(_libs UNIX_COMMAND "${_libs}")
  set(_main "${PACKAGE_TEST_DIR}/consumer/main.cpp")
  run("compile core consumer (pkg-config)"
    COMMAND "${CXX_COMPILER}" -std=c++20 ${_cflags} "${_main}" ${_libs} -o "${WORK_DIR}/consumer-pkgconfig")
  run("run core consumer (pkg-config)" COMMAND "${WORK_DIR}/consumer-pkgconfig")
  # Without C++20 the first error names the requirement.
  run("compile without -std=c++20" EXPECT_FAIL EXPECT_MESSAGE "orchcore requires C\\+\\+20"
    COMMAND "${CXX_COMPILER}" -std=c++17 -Wfatal-errors -fsyntax-only ${_cflags} "${_main}")
  if(EXISTS "${_pcdir}/orchcore-redis.pc")
    run("pkg-config --cflags --libs orchcore-redis"
      EXPECT_MESSAGE "-lorchcore_redis.*-lorchcore_core"
      COMMAND "${CMAKE_COMMAND}" -E env "PKG_CONFIG_PATH=${_pcdir}" "${PKG_CONFIG_EXECUTABLE}" --cflags --libs orchcore-redis)
    string(STRIP "${run_output}" _redis_flags)
    separate_arguments(_redis_flags UNIX_COMMAND "${_redis_flags}")
    run("compile Redis consumer (pkg-config)"
      COMMAND "${CXX_COMPILER}" -std=c++20 "${PACKAGE_TEST_DIR}/consumer/redis_main.cpp" ${_redis_flags}
        -o "${WORK_DIR}/redis-consumer-pkgconfig")
    run("run Redis consumer (pkg-config)" COMMAND "${WORK_DIR}/redis-consumer-pkgconfig")
  endif()
endfunction()

# --- FetchContent with OVERRIDE_FIND_PACKAGE -------------------------------
function(test_fetchcontent)
  set(_src "${PACKAGE_TEST_DIR}/fetchcontent_consumer")
  set(_from "-DORCHCORE_SOURCE_DIR=${ORCHCORE_SOURCE_DIR}")
  consumer("FetchContent consumer" "${_src}" "${WORK_DIR}/fc"
    BUILD RUN fetchcontent_consumer ARGS "${_from}")
  consumer("FetchContent: version 0.2 is not satisfied by 0.1" "${_src}" "${WORK_DIR}/fc-0.2"
    EXPECT_FAIL EXPECT_MESSAGE "compatible with requested version.*0\\.2"
    ARGS "${_from}" "-DORCHCORE_TEST_FIND_ARGS=0.2 CONFIG REQUIRED")
  consumer("FetchContent: COMPONENTS redis fails without the Redis component" "${_src}" "${WORK_DIR}/fc-redis-off"
    EXPECT_FAIL EXPECT_MESSAGE "orchcore: component 'redis' is not available"
    ARGS "${_from}" "-DORCHCORE_TEST_FIND_ARGS=0.1 CONFIG REQUIRED COMPONENTS redis")
  consumer("FetchContent: COMPONENTS redis with ORCHCORE_WITH_REDIS=ON" "${_src}" "${WORK_DIR}/fc-redis-on"
    ARGS "${_from}" -DORCHCORE_WITH_REDIS=ON "-DORCHCORE_TEST_FIND_ARGS=0.1 CONFIG REQUIRED COMPONENTS redis")
endfunction()

# --- vcpkg: the overlay port -------------------------------------------------
function(test_vcpkg)
  set(_root "${WORK_DIR}/vcpkg")
  run("portfile.cmake with feature redis (x64-linux: static, Release + Debug)"
    COMMAND "${CMAKE_COMMAND}"
      "-DPORT_DIR=${ORCHCORE_SOURCE_DIR}/ports/orchcore" -DFEATURES=redis "-DVCPKG_ROOT_DIR=${_root}"
      "-DGENERATOR=${GENERATOR}" "-DCXX_COMPILER=${CXX_COMPILER}" "-DMAKE_PROGRAM=${MAKE_PROGRAM}"
      -P "${PACKAGE_TEST_DIR}/vcpkg_emulation.cmake")
  set(_pkg "${_root}/packages/orchcore_x64-linux")
  foreach(_f IN ITEMS share/orchcore/orchcoreConfig.cmake share/orchcore/orchcoreTargets-debug.cmake
                      share/orchcore/usage share/orchcore/copyright include/orchcore/orchcore.hpp
                      lib/liborchcore_core.a lib/liborchcore_redis.a
                      debug/lib/liborchcore_cored.a debug/lib/liborchcore_redisd.a
                      lib/pkgconfig/orchcore.pc debug/lib/pkgconfig/orchcore-redis.pc)
    if(NOT EXISTS "${_pkg}/${_f}")
      message(FATAL_ERROR "the port did not install ${_f}")
    endif()
  endforeach()
  foreach(_f IN ITEMS debug/include debug/share lib/cmake debug/lib/cmake)
    if(EXISTS "${_pkg}/${_f}")
      message(FATAL_ERROR "the port left ${_f} behind (vcpkg's post-build checks reject it)")
    endif()
  endforeach()
  consumer("consumer of the vcpkg tree (${BUILD_CONFIG}, COMPONENTS redis)" "${PACKAGE_TEST_DIR}/consumer"
    "${WORK_DIR}/vcpkg-consumer" BUILD RUN consumer redis_consumer
    ARGS "-DCMAKE_PREFIX_PATH=${_pkg}" -DORCHCORE_TEST_COMPONENTS=redis)
  assert_found_in("${WORK_DIR}/vcpkg-consumer" "${_pkg}")
  _debug_and_release_prefix("${_root}/buildtrees/orchcore")
endfunction()

# The port's Release and Debug build trees installed into one ordinary
# prefix: neither may overwrite the other's libraries.
function(_debug_and_release_prefix trees)
  set(_both "${WORK_DIR}/debug-and-release")
  foreach(_cfg IN ITEMS rel dbg)
    run("install the ${_cfg} build into ${_both}"
      COMMAND "${CMAKE_COMMAND}" --install "${trees}/x64-linux-${_cfg}" --prefix "${_both}")
  endforeach()
  set(_cmakedir "${_both}/${INSTALL_LIBDIR}/cmake/orchcore")
  foreach(_set IN ITEMS orchcoreTargets orchcoreRedisTargets)
    set(_files "")
    foreach(_cfg IN ITEMS release debug)
      string(TOUPPER "${_cfg}" _CFG)
      file(STRINGS "${_cmakedir}/${_set}-${_cfg}.cmake" _line REGEX "IMPORTED_LOCATION_${_CFG} ")
      if(NOT _line MATCHES "\"\\\${_IMPORT_PREFIX}/([^\"]+)\"")
        message(FATAL_ERROR "${_set}-${_cfg}.cmake names no library: '${_line}'")
      endif()
      if(NOT EXISTS "${_both}/${CMAKE_MATCH_1}")
        message(FATAL_ERROR "${_set}-${_cfg}.cmake names ${CMAKE_MATCH_1}, which is not installed")
      endif()
      list(APPEND _files "${CMAKE_MATCH_1}")
    endforeach()
    list(REMOVE_DUPLICATES _files)
    list(LENGTH _files _n)
    if(NOT _n EQUAL 2)
      message(FATAL_ERROR "Debug and Release of ${_set} share one library file (${_files}): "
        "the second install overwrote the first")
    endif()
    message(STATUS "[${MODE}] ${_set}: Release and Debug libraries: ${_files}")
  endforeach()
  consumer("consumer of the Debug + Release prefix (${BUILD_CONFIG})" "${PACKAGE_TEST_DIR}/consumer"
    "${WORK_DIR}/both-consumer" ARGS "-DCMAKE_PREFIX_PATH=${_both}" -DORCHCORE_TEST_COMPONENTS=redis)
endfunction()

# --- Conan: the recipe's options, package_info and test_package -------------
function(test_conan)
  if(NOT PYTHON)
    message(FATAL_ERROR "run_package_test.cmake: PYTHON is not set")
  endif()
  set(_pkg "${WORK_DIR}/package")
  set(_conan "${PYTHON}" "${PACKAGE_TEST_DIR}/conan_emulation.py"
    --recipe "${ORCHCORE_SOURCE_DIR}/conanfile.py" --source "${ORCHCORE_SOURCE_DIR}" --package "${_pkg}"
    -o shared=True -o with_redis=True -s "build_type=${BUILD_CONFIG}")
  run("the recipe's generate(): CMake cache variables" COMMAND ${_conan} cmake-args)
  string(STRIP "${run_output}" _args)
  string(REPLACE "\n" ";" _args "${_args}")
  message(STATUS "[${MODE}] recipe passes: ${_args}")
  set(_bld "${WORK_DIR}/build")
  run("configure orchcore as the recipe does"
    COMMAND "${CMAKE_COMMAND}" -S "${ORCHCORE_SOURCE_DIR}" -B "${_bld}" ${_configure_args} ${_args})
  run("build" COMMAND "${CMAKE_COMMAND}" --build "${_bld}" ${_build_args})
  run("install into the package folder" COMMAND "${CMAKE_COMMAND}" --install "${_bld}" --prefix "${_pkg}")

  _check_shared_libraries("${_pkg}/lib")
  run("the recipe's package_info() matches the installed CMake targets" COMMAND ${_conan} check)
  message(STATUS "${run_output}")
  consumer("shared-library consumer of the Redis APIs only (--as-needed, DT_RUNPATH)"
    "${PACKAGE_TEST_DIR}/consumer" "${WORK_DIR}/redis-consumer" BUILD RUN redis_consumer consumer
    ARGS "-DCMAKE_PREFIX_PATH=${_pkg}" -DORCHCORE_TEST_COMPONENTS=redis -DORCHCORE_TEST_AS_NEEDED=ON)

  # What Conan does next: the recipe's package() trims the folder, CMakeDeps
  # writes the consumer's config from package_info(), test_package builds.
  run("the recipe's package()" COMMAND ${_conan} package)
  run("CMakeDeps from package_info()" COMMAND ${_conan} cmakedeps "${WORK_DIR}/deps")
  consumer("test_package" "${ORCHCORE_SOURCE_DIR}/test_package" "${WORK_DIR}/test_package"
    BUILD RUN test_package ARGS "-DCMAKE_PREFIX_PATH=${WORK_DIR}/deps")
  assert_found_in("${WORK_DIR}/test_package" "${WORK_DIR}/deps")
endfunction()

# liborchcore_redis finds liborchcore_core through its RUNPATH, and the
# shared libraries export orchcore's symbols only.
function(_check_shared_libraries libdir)
  file(GLOB _libs "${libdir}/liborchcore_*.so")
  list(LENGTH _libs _n)
  if(NOT _n EQUAL 2)
    message(FATAL_ERROR "expected two shared orchcore libraries in ${libdir}, found: ${_libs}")
  endif()
  foreach(_lib IN LISTS _libs)
    file(READ_ELF "${_lib}" RUNPATH _runpath)
    if(_lib MATCHES "redis" AND NOT _runpath STREQUAL "$ORIGIN")
      message(FATAL_ERROR "${_lib}: RUNPATH is '${_runpath}', expected '$ORIGIN'")
    endif()
    if(NOT NM)
      message(FATAL_ERROR "run_package_test.cmake: NM is not set")
    endif()
    run("exported symbols of ${_lib}" COMMAND "${NM}" -D --defined-only --format=posix "${_lib}")
    string(REPLACE "\n" ";" _lines "${run_output}")
    set(_foreign "")
    set(_count 0)
    foreach(_line IN LISTS _lines)
      string(REGEX REPLACE " .*" "" _sym "${_line}")
      if(_sym STREQUAL "")
        continue()
      endif()
      math(EXPR _count "${_count} + 1")
      if(NOT _sym MATCHES "^_Z(N[KRO]*|T[VIST]N|Th[n0-9_]*N[K]?|Tv[n0-9_]*N[K]?|ZN[K]?|GVN|GVZN[K]?|THN|TWN)8orchcore")
        list(APPEND _foreign "${_sym}")
      endif()
    endforeach()
    if(_foreign)
      list(LENGTH _foreign _nf)
      list(SUBLIST _foreign 0 20 _some)
      list(JOIN _some "\n  " _some)
      message(FATAL_ERROR "${_lib} exports ${_nf} symbols that are not orchcore's (of ${_count}), e.g.\n  ${_some}")
    endif()
    message(STATUS "[${MODE}] ${_lib}: RUNPATH '${_runpath}', ${_count} exported symbols, all orchcore's")
  endforeach()
endfunction()
