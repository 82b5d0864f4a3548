# Helpers of the top-level CMakeLists.txt: library target properties, the
# FetchContent redirect files and the install/export/package-config rules.
include_guard(GLOBAL)

# include/orchcore/version.hpp states the version to C++ code; it must agree
# with project(VERSION).
function(orchcore_check_version_header)
  file(STRINGS "${PROJECT_SOURCE_DIR}/include/orchcore/version.hpp" _lines
    REGEX "^#define ORCHCORE_VERSION_(MAJOR|MINOR|PATCH) |version_string = ")
  if(NOT _lines MATCHES "version_string = \"${PROJECT_VERSION}\"")
    message(FATAL_ERROR "orchcore: include/orchcore/version.hpp's version_string is not \"${PROJECT_VERSION}\"")
  endif()
  foreach(_part IN ITEMS MAJOR MINOR PATCH)
    set(_found "")
    foreach(_line IN LISTS _lines)
      if(_line MATCHES "^#define ORCHCORE_VERSION_${_part} +([0-9]+)")
        set(_found "${CMAKE_MATCH_1}")
      endif()
    endforeach()
    if(NOT _found STREQUAL "${PROJECT_VERSION_${_part}}")
      message(FATAL_ERROR "orchcore: include/orchcore/version.hpp says ORCHCORE_VERSION_${_part} "
        "'${_found}', project(VERSION) says '${PROJECT_VERSION_${_part}}'")
    endif()
  endforeach()
endfunction()

# orchcore_set_library_properties(<target>): file names, versions and, for a
# shared library, its exported symbols and run-time search path.
function(orchcore_set_library_properties target)
  set_target_properties(${target} PROPERTIES
    CXX_EXTENSIONS OFF
    POSITION_INDEPENDENT_CODE ON
    DEBUG_POSTFIX "${ORCHCORE_DEBUG_POSTFIX}"
    VERSION ${PROJECT_VERSION}
    # Before 1.0 every minor release may break the ABI.
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  get_target_property(_type ${target} TYPE)
  if(NOT _type STREQUAL "SHARED_LIBRARY" OR APPLE OR WIN32)
    return()
  endif()
  # Export orchcore's own symbols only (Boost's template code stays local);
  # liborchcore_redis finds liborchcore_core next to itself.
  set(_map "${PROJECT_SOURCE_DIR}/cmake/orchcore.map")
  target_link_options(${target} PRIVATE "LINKER:--version-script=${_map}")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${_map}")
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN")
endfunction()

# After FetchContent_MakeAvailable(orchcore) with OVERRIDE_FIND_PACKAGE,
# find_package(orchcore ...) reads FetchContent's generated config, which
# accepts any version and any component. Replace its version file with the
# real one and add the component check.
function(orchcore_write_fetchcontent_redirect)
  if(PROJECT_IS_TOP_LEVEL OR NOT CMAKE_FIND_PACKAGE_REDIRECTS_DIR)
    return()
  endif()
  include(CMakePackageConfigHelpers)
  orchcore_version_compatibility(_compat)
  set(_dir "${CMAKE_FIND_PACKAGE_REDIRECTS_DIR}")
  write_basic_package_version_file("${_dir}/orchcore-config-version.cmake"
    VERSION ${PROJECT_VERSION} COMPATIBILITY ${_compat})
  configure_file("${PROJECT_SOURCE_DIR}/cmake/orchcoreComponents.cmake"
    "${_dir}/orchcoreComponents.cmake" COPYONLY)
  configure_file("${PROJECT_SOURCE_DIR}/cmake/orchcore-extra.cmake.in"
    "${_dir}/orchcore-extra.cmake" COPYONLY)
endfunction()

# Version policy: before 1.0 a minor release may break the API (0.2 does not
# satisfy a request for 0.1); from 1.0 on only a major release may.
function(orchcore_version_compatibility out)
  if(PROJECT_VERSION_MAJOR EQUAL 0)
    set(${out} SameMinorVersion PARENT_SCOPE)
  else()
    set(${out} SameMajorVersion PARENT_SCOPE)
  endif()
endfunction()

# Install rules for the libraries, headers, CMake package and pkg-config
# files. Export sets: orchcoreTargets (core), orchcoreRedisTargets and
# orchcoreYamlTargets, which the package config loads only for
# `COMPONENTS redis` / `COMPONENTS yaml`.
function(orchcore_install_package)
  install(TARGETS orchcore_core orchcore_orchcore
    EXPORT orchcoreTargets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT orchcore_development
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT orchcore_runtime
            NAMELINK_COMPONENT orchcore_development
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT orchcore_runtime
    INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  _orchcore_install_export(orchcoreTargets)

  set(_header_excludes "")
  set(ORCHCORE_REDIS_STATIC FALSE)
  if(TARGET orchcore_redis)
    install(TARGETS orchcore_redis
      EXPORT orchcoreRedisTargets
      ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT orchcore_development
      LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT orchcore_runtime
              NAMELINK_COMPONENT orchcore_development
      RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT orchcore_runtime
      INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
    _orchcore_install_export(orchcoreRedisTargets)
    get_target_property(_redis_type orchcore_redis TYPE)
    if(_redis_type STREQUAL "STATIC_LIBRARY")
      set(ORCHCORE_REDIS_STATIC TRUE)
    endif()
  else()
    # The Redis headers are installed only with the library they declare.
    set(_header_excludes PATTERN "redis" EXCLUDE)
  endif()
  set(ORCHCORE_YAML_STATIC FALSE)
  if(TARGET orchcore_yaml)
    install(TARGETS orchcore_yaml
      EXPORT orchcoreYamlTargets
      ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT orchcore_development
      LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT orchcore_runtime
              NAMELINK_COMPONENT orchcore_development
      RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT orchcore_runtime
      INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
    _orchcore_install_export(orchcoreYamlTargets)
    get_target_property(_yaml_type orchcore_yaml TYPE)
    if(_yaml_type STREQUAL "STATIC_LIBRARY")
      set(ORCHCORE_YAML_STATIC TRUE)
    endif()
  else()
    list(APPEND _header_excludes PATTERN "yaml.hpp" EXCLUDE)
  endif()
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/orchcore"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
    COMPONENT orchcore_development
    FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h" PATTERN "*.ipp" ${_header_excludes})

  _orchcore_install_config()
  _orchcore_install_pkgconfig()
endfunction()

function(_orchcore_install_export name)
  install(EXPORT ${name}
    NAMESPACE orchcore::
    DESTINATION "${ORCHCORE_INSTALL_CMAKEDIR}"
    COMPONENT orchcore_development)
  # Build-tree export: orchcore_DIR=<build dir> works without installing.
  export(EXPORT ${name}
    NAMESPACE orchcore::
    FILE "${PROJECT_BINARY_DIR}/${name}.cmake")
endfunction()

# Uses ORCHCORE_REDIS_STATIC and ORCHCORE_YAML_STATIC from the caller.
function(_orchcore_install_config)
  set(ORCHCORE_VERSION_MAJOR_MINOR "${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}")
  configure_package_config_file(
    "${PROJECT_SOURCE_DIR}/cmake/orchcoreConfig.cmake.in"
    "${PROJECT_BINARY_DIR}/orchcoreConfig.cmake"
    INSTALL_DESTINATION "${ORCHCORE_INSTALL_CMAKEDIR}")
  orchcore_version_compatibility(_compat)
  write_basic_package_version_file(
    "${PROJECT_BINARY_DIR}/orchcoreConfigVersion.cmake"
    VERSION ${PROJECT_VERSION}
    COMPATIBILITY ${_compat})
  foreach(_file IN ITEMS orchcoreComponents.cmake orchcoreFindHiredis.cmake)
    configure_file("${PROJECT_SOURCE_DIR}/cmake/${_file}" "${PROJECT_BINARY_DIR}/${_file}" COPYONLY)
  endforeach()
  install(FILES
    "${PROJECT_BINARY_DIR}/orchcoreConfig.cmake"
    "${PROJECT_BINARY_DIR}/orchcoreConfigVersion.cmake"
    "${PROJECT_BINARY_DIR}/orchcoreComponents.cmake"
    "${PROJECT_BINARY_DIR}/orchcoreFindHiredis.cmake"
    DESTINATION "${ORCHCORE_INSTALL_CMAKEDIR}"
    COMPONENT orchcore_development)
endfunction()

# orchcore.pc (core) and orchcore-redis.pc. Relocatable: the prefix is
# derived from ${pcfiledir}. Uses ORCHCORE_REDIS_STATIC from the caller.
function(_orchcore_install_pkgconfig)
  set(_pc_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(ORCHCORE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  else()
    file(RELATIVE_PATH _up "/__root__/${_pc_dir}" "/__root__")
    string(REGEX REPLACE "/$" "" _up "${_up}")
    set(ORCHCORE_PC_PREFIX "\${pcfiledir}/${_up}")
  endif()
  foreach(_dir IN ITEMS LIBDIR INCLUDEDIR)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
      set(ORCHCORE_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
    else()
      set(ORCHCORE_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
    endif()
  endforeach()
  set(ORCHCORE_PC_CORE_LIB "$<TARGET_FILE_BASE_NAME:orchcore_core>")
  set(_modules orchcore)
  if(TARGET orchcore_redis)
    list(APPEND _modules orchcore-redis)
    set(ORCHCORE_PC_REDIS_LIB "$<TARGET_FILE_BASE_NAME:orchcore_redis>")
    if(ORCHCORE_REDIS_STATIC)
      set(ORCHCORE_PC_REDIS_REQUIRES "Requires: orchcore = ${PROJECT_VERSION}, hiredis")
    else()
      set(ORCHCORE_PC_REDIS_REQUIRES "Requires: orchcore = ${PROJECT_VERSION}\nRequires.private: hiredis")
    endif()
  endif()
  foreach(_module IN LISTS _modules)
    configure_file("${PROJECT_SOURCE_DIR}/cmake/${_module}.pc.in"
      "${PROJECT_BINARY_DIR}/${_module}.pc.gen" @ONLY)
    file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/${_module}.pc"
      INPUT "${PROJECT_BINARY_DIR}/${_module}.pc.gen")
    install(FILES "${PROJECT_BINARY_DIR}/${_module}.pc"
      DESTINATION "${_pc_dir}"
      COMPONENT orchcore_development)
  endforeach()
endfunction()
