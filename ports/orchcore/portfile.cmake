# Overlay port: builds the orchcore checkout this file lives in
# (vcpkg install orchcore --overlay-ports=<checkout>/ports). A port in a
# registry would fetch a release instead:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO <owner>/orchcore REF v${VERSION} SHA512 <sha512>)
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    redis ORCHCORE_WITH_REDIS
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DORCHCORE_INSTALL=ON
    -DORCHCORE_BUILD_TESTS=OFF
    -DORCHCORE_BUILD_BENCHMARKS=OFF
    -DORCHCORE_BUILD_EXAMPLES=OFF
    -DORCHCORE_PACKAGE_TESTS=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME orchcore CONFIG_PATH lib/cmake/orchcore)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
