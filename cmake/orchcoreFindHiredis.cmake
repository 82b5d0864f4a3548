# Makes the target hiredis::hiredis available and sets orchcore_hiredis_FOUND.
#
# Used by orchcore's own build and by the installed package config, so both
# find hiredis the same way: hiredis' CMake package (hiredis 1.x, vcpkg,
# Conan) if there is one, otherwise the pkg-config module `hiredis` (Debian's
# libhiredis-dev ships no usable CMake package). Never fails by itself.
if(NOT TARGET hiredis::hiredis)
  find_package(hiredis CONFIG QUIET)
endif()
if(NOT TARGET hiredis::hiredis)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(orchcore_hiredis_pc QUIET IMPORTED_TARGET hiredis)
  endif()
  if(TARGET PkgConfig::orchcore_hiredis_pc)
    add_library(hiredis::hiredis INTERFACE IMPORTED)
    target_link_libraries(hiredis::hiredis INTERFACE PkgConfig::orchcore_hiredis_pc)
  endif()
endif()
if(TARGET hiredis::hiredis)
  set(orchcore_hiredis_FOUND TRUE)
else()
  set(orchcore_hiredis_FOUND FALSE)
endif()
