import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load, rmdir
from conan.tools.scm import Version

required_conan_version = ">=2.0"


class OrchcoreConan(ConanFile):
    name = "orchcore"
    description = ("Embeddable C++20 library for running work: admission queue with policies, "
                   "worker pool, coordinator with retries, timeouts, cancellation, steering and "
                   "heartbeats, distribution over Redis.")
    license = "MIT"
    topics = ("task-queue", "admission-control", "worker-pool", "orchestration", "redis", "asio")
    package_type = "library"
    settings = "os", "arch", "compiler", "build_type"
    options = {
        "shared": [True, False],
        "fPIC": [True, False],
        "with_redis": [True, False],
    }
    default_options = {
        "shared": False,
        "fPIC": True,
        "with_redis": True,
    }
    # The recipe lives in orchcore's repository and packages that checkout.
    exports_sources = ("CMakeLists.txt", "LICENSE", "cmake/*", "include/*", "src/*")

    @property
    def _min_cppstd(self):
        return "20"

    @property
    def _compilers_minimum_version(self):
        return {"gcc": "12", "clang": "14"}

    def set_version(self):
        cmakelists = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        self.version = re.search(r"project\(orchcore\s+VERSION\s+([0-9.]+)", cmakelists).group(1)

    def config_options(self):
        if self.settings.os == "Windows":
            del self.options.fPIC

    def configure(self):
        if self.options.shared:
            self.options.rm_safe("fPIC")

    def layout(self):
        cmake_layout(self, src_folder=".")

    def requirements(self):
        # Boost.Asio and Boost.JSON types appear in orchcore's public headers.
        self.requires("boost/1.83.0", transitive_headers=True, transitive_libs=True)
        if self.options.with_redis:
            # hiredis is used by the compiled library only.
            self.requires("hiredis/1.2.0")

    def validate(self):
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration(f"{self.ref} supports Linux only (futexes, POSIX descriptors).")
        check_min_cppstd(self, self._min_cppstd)
        minimum_version = self._compilers_minimum_version.get(str(self.settings.compiler))
        if minimum_version and Version(self.settings.compiler.version) < minimum_version:
            raise ConanInvalidConfiguration(
                f"{self.ref} requires C++{self._min_cppstd}, which your compiler does not support well enough.")
        if self.dependencies["boost"].options.get_safe("without_json"):
            raise ConanInvalidConfiguration(f"{self.ref} requires Boost.JSON (boost/*:without_json=False).")

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["ORCHCORE_INSTALL"] = True
        tc.cache_variables["ORCHCORE_BUILD_TESTS"] = False
        tc.cache_variables["ORCHCORE_BUILD_BENCHMARKS"] = False
        tc.cache_variables["ORCHCORE_BUILD_EXAMPLES"] = False
        tc.cache_variables["ORCHCORE_PACKAGE_TESTS"] = False
        tc.cache_variables["ORCHCORE_WITH_REDIS"] = bool(self.options.with_redis)
        tc.generate()
        deps = CMakeDeps(self)
        deps.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.install()
        rmdir(self, os.path.join(self.package_folder, "lib", "cmake"))
        rmdir(self, os.path.join(self.package_folder, "lib", "pkgconfig"))

    def package_info(self):
        # Same names as orchcore's own CMake package and pkg-config files.
        # Conan's root target orchcore::orchcore links every component built.
        self.cpp_info.set_property("cmake_file_name", "orchcore")
        self.cpp_info.set_property("cmake_target_name", "orchcore::orchcore")
        postfix = "d" if self.settings.build_type == "Debug" else ""

        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "orchcore::core")
        core.set_property("pkg_config_name", "orchcore")
        core.libs = [f"orchcore_core{postfix}"]
        core.requires = ["boost::headers", "boost::json"]
        core.system_libs = ["pthread"]

        if self.options.with_redis:
            redis = self.cpp_info.components["redis"]
            redis.set_property("cmake_target_name", "orchcore::redis")
            redis.set_property("pkg_config_name", "orchcore-redis")
            redis.libs = [f"orchcore_redis{postfix}"]
            redis.requires = ["core", "hiredis::hiredis"]
