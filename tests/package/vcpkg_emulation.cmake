# Runs a vcpkg portfile without vcpkg: defines the helper functions the
# portfile calls, doing what vcpkg's own do for a static x64-linux triplet
# (Release and Debug builds, debug/ tree, share/<port> config fixup, pkg-config
# fixup, copyright), then includes the portfile. Not covered: downloads,
# dependency installation (the system's Boost and hiredis stand in), binary
# caching, the toolchain file and most post-build checks.
#
#   cmake -DPORT_DIR=<ports/orchcore> -DFEATURES=<f1;f2> -DVCPKG_ROOT_DIR=<scratch>
#         -DGENERATOR=... -DCXX_COMPILER=... [-DMAKE_PROGRAM=...] -P vcpkg_emulation.cmake
#
# Produces <scratch>/packages/<port>_x64-linux (what vcpkg copies into
# installed/x64-linux) and the build trees <scratch>/buildtrees/<port>/x64-linux-{rel,dbg}.
cmake_minimum_required(VERSION 3.25)

get_filename_component(PORT "${PORT_DIR}" NAME)
set(TARGET_TRIPLET x64-linux)
set(VCPKG_TARGET_IS_LINUX ON)
set(VCPKG_LIBRARY_LINKAGE static)
set(VCPKG_CRT_LINKAGE dynamic)
set(CURRENT_PACKAGES_DIR "${VCPKG_ROOT_DIR}/packages/${PORT}_${TARGET_TRIPLET}")
set(CURRENT_BUILDTREES_DIR "${VCPKG_ROOT_DIR}/buildtrees/${PORT}")
file(READ "${PORT_DIR}/vcpkg.json" _manifest)
string(JSON VERSION GET "${_manifest}" version)
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}" "${CURRENT_BUILDTREES_DIR}")

function(_vcpkg_run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "vcpkg emulation: command failed (${_rc}): ${ARGN}\n${_out}")
  endif()
endfunction()

# Features listed in vcpkg.json that were not requested are turned OFF.
function(vcpkg_check_features)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "OUT_FEATURE_OPTIONS" "FEATURES;INVERTED_FEATURES")
  string(JSON _features GET "${_manifest}" features)
  set(_options "")
  list(LENGTH arg_FEATURES _n)
  math(EXPR _last "${_n} - 1")
  foreach(_i RANGE 0 ${_last} 2)
    math(EXPR _j "${_i} + 1")
    list(GET arg_FEATURES ${_i} _feature)
    list(GET arg_FEATURES ${_j} _var)
    string(JSON _ignored ERROR_VARIABLE _missing GET "${_features}" "${_feature}")
    if(_missing)
      message(FATAL_ERROR "vcpkg_check_features: feature '${_feature}' is not in vcpkg.json")
    endif()
    if("${_feature}" IN_LIST FEATURES)
      list(APPEND _options "-D${_var}=ON")
    else()
      list(APPEND _options "-D${_var}=OFF")
    endif()
  endforeach()
  set(${arg_OUT_FEATURE_OPTIONS} "${_options}" PARENT_SCOPE)
endfunction()

# Two build trees, as vcpkg makes: -rel installs into the package root,
# -dbg into its debug/ directory.
function(vcpkg_cmake_configure)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "SOURCE_PATH" "OPTIONS;OPTIONS_RELEASE;OPTIONS_DEBUG")
  set(_common -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_INSTALL_LIBDIR:STRING=lib -DCMAKE_INSTALL_BINDIR:STRING=bin
    -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
    -DFETCHCONTENT_FULLY_DISCONNECTED=ON)
  if(MAKE_PROGRAM)
    list(APPEND _common "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  _vcpkg_run("${CMAKE_COMMAND}" -S "${arg_SOURCE_PATH}" -B "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-rel"
    ${_common} -DCMAKE_BUILD_TYPE=Release "-DCMAKE_INSTALL_PREFIX=${CURRENT_PACKAGES_DIR}"
    ${arg_OPTIONS} ${arg_OPTIONS_RELEASE})
  _vcpkg_run("${CMAKE_COMMAND}" -S "${arg_SOURCE_PATH}" -B "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-dbg"
    ${_common} -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_INSTALL_PREFIX=${CURRENT_PACKAGES_DIR}/debug"
    ${arg_OPTIONS} ${arg_OPTIONS_DEBUG})
endfunction()

function(vcpkg_cmake_install)
  foreach(_cfg IN ITEMS rel dbg)
    set(_dir "${CURRENT_BUILDTREES_DIR}/${TARGET_TRIPLET}-${_cfg}")
    _vcpkg_run("${CMAKE_COMMAND}" --build "${_dir}" --parallel 2)
    _vcpkg_run("${CMAKE_COMMAND}" --install "${_dir}")
  endforeach()
endfunction()

# Moves <CONFIG_PATH> to share/<PACKAGE_NAME>, merges the Debug targets files
# into it (pointing at debug/), and fixes the prefix computations for the new
# depth, as vcpkg-cmake-config's function does.
function(vcpkg_cmake_config_fixup)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "PACKAGE_NAME;CONFIG_PATH" "")
  set(_share "${CURRENT_PACKAGES_DIR}/share/${arg_PACKAGE_NAME}")
  set(_rel "${CURRENT_PACKAGES_DIR}/${arg_CONFIG_PATH}")
  set(_dbg "${CURRENT_PACKAGES_DIR}/debug/${arg_CONFIG_PATH}")
  if(NOT IS_DIRECTORY "${_rel}" OR NOT IS_DIRECTORY "${_dbg}")
    message(FATAL_ERROR "vcpkg_cmake_config_fixup: '${arg_CONFIG_PATH}' does not exist in both trees")
  endif()
  file(MAKE_DIRECTORY "${_share}")
  file(GLOB _files "${_rel}/*")
  file(COPY ${_files} DESTINATION "${_share}")
  file(GLOB _debug_targets "${_dbg}/*[Tt]argets-debug.cmake")
  foreach(_f IN LISTS _debug_targets)
    file(READ "${_f}" _content)
    string(REPLACE "\${_IMPORT_PREFIX}" "\${_IMPORT_PREFIX}/debug" _content "${_content}")
    get_filename_component(_name "${_f}" NAME)
    file(WRITE "${_share}/${_name}" "${_content}")
  endforeach()
  file(REMOVE_RECURSE "${_rel}" "${_dbg}" "${CURRENT_PACKAGES_DIR}/debug/share")
  foreach(_dir IN ITEMS "${CURRENT_PACKAGES_DIR}/lib/cmake" "${CURRENT_PACKAGES_DIR}/debug/lib/cmake")
    file(GLOB _left "${_dir}/*")
    if(NOT _left)
      file(REMOVE_RECURSE "${_dir}")
    endif()
  endforeach()
  set(_up "get_filename_component(_IMPORT_PREFIX \"\${_IMPORT_PREFIX}\" PATH)")
  file(GLOB _configs "${_share}/*.cmake")
  foreach(_f IN LISTS _configs)
    file(READ "${_f}" _content)
    string(REGEX REPLACE
      "get_filename_component\\(_IMPORT_PREFIX \"\\\${CMAKE_CURRENT_LIST_FILE}\" PATH\\)(\nget_filename_component\\(_IMPORT_PREFIX \"\\\${_IMPORT_PREFIX}\" PATH\\))*"
      "get_filename_component(_IMPORT_PREFIX \"\${CMAKE_CURRENT_LIST_FILE}\" PATH)\n${_up}\n${_up}"
      _content "${_content}")
    string(REGEX REPLACE
      "get_filename_component\\(PACKAGE_PREFIX_DIR \"\\\${CMAKE_CURRENT_LIST_DIR}/[./]*\" ABSOLUTE\\)"
      "get_filename_component(PACKAGE_PREFIX_DIR \"\${CMAKE_CURRENT_LIST_DIR}/../../\" ABSOLUTE)"
      _content "${_content}")
    file(WRITE "${_f}" "${_content}")
  endforeach()
endfunction()

# vcpkg rewrites each .pc file's prefix relative to ${pcfiledir} and rejects
# absolute paths into the build.
function(vcpkg_fixup_pkgconfig)
  foreach(_tree IN ITEMS "" "debug/")
    file(GLOB _pcs "${CURRENT_PACKAGES_DIR}/${_tree}lib/pkgconfig/*.pc")
    foreach(_pc IN LISTS _pcs)
      file(READ "${_pc}" _content)
      if(_content MATCHES "${VCPKG_ROOT_DIR}")
        message(FATAL_ERROR "vcpkg_fixup_pkgconfig: ${_pc} has an absolute path into the build:\n${_content}")
      endif()
      string(REGEX REPLACE "(^|\n)prefix=[^\n]*" "\\1prefix=\${pcfiledir}/../.." _content "${_content}")
      if(_tree STREQUAL "debug/")
        string(REPLACE "\${prefix}/include" "\${prefix}/../include" _content "${_content}")
      endif()
      file(WRITE "${_pc}" "${_content}")
    endforeach()
  endforeach()
endfunction()

function(vcpkg_install_copyright)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "" "FILE_LIST")
  set(_text "")
  foreach(_f IN LISTS arg_FILE_LIST)
    if(NOT EXISTS "${_f}")
      message(FATAL_ERROR "vcpkg_install_copyright: ${_f} does not exist")
    endif()
    file(READ "${_f}" _part)
    string(APPEND _text "${_part}")
  endforeach()
  file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright" "${_text}")
endfunction()

include("${PORT_DIR}/portfile.cmake")

# A few of vcpkg's post-build checks.
foreach(_required IN ITEMS "share/${PORT}/copyright" "share/${PORT}/usage")
  if(NOT EXISTS "${CURRENT_PACKAGES_DIR}/${_required}")
    message(FATAL_ERROR "vcpkg post-build check: ${_required} is missing")
  endif()
endforeach()
file(GLOB_RECURSE _share_files "${CURRENT_PACKAGES_DIR}/share/*.cmake")
foreach(_f IN LISTS _share_files)
  file(READ "${_f}" _content)
  if(_content MATCHES "${VCPKG_ROOT_DIR}|${PORT_DIR}")
    message(FATAL_ERROR "vcpkg post-build check: ${_f} contains an absolute path into the build")
  endif()
endforeach()
message(STATUS "vcpkg emulation: ${PORT} ${VERSION} [${FEATURES}] installed into ${CURRENT_PACKAGES_DIR}")
