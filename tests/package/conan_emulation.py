#!/usr/bin/env python3
"""Runs orchcore's conanfile.py without Conan, for the package.conan test.

A small stand-in for the parts of the `conan` Python package the recipe
imports lets the recipe's own methods run:

  cmake-args   set_version/config_options/configure/validate/generate; prints
               the CMake cache variables CMakeToolchain would pass (one -D per line)
  check        package_info() against the installed CMake targets of the
               package folder: component target names, library names and the
               order of each component's requirements
  package      package() on an already installed package folder
  cmakedeps D  writes into D the orchcore-config.cmake CMakeDeps would generate
               from package_info() (dependencies: the system's Boost and hiredis)

Not covered: Conan's dependency graph, profiles, binary compatibility, the
real CMakeDeps/CMakeToolchain output and conan-center's hooks.
"""
import argparse
import fnmatch
import importlib.util
import os
import re
import shutil
import sys
import types

# --- the stand-in `conan` package -------------------------------------------


class ConanInvalidConfiguration(Exception):
    pass


class _Value(str):
    """A setting value with sub-settings (compiler.version) as attributes."""

    def __new__(cls, value, **sub):
        obj = super().__new__(cls, value)
        obj.__dict__.update(sub)
        return obj


class _Options:
    def __init__(self, values):
        self.__dict__["_values"] = dict(values)

    def __getattr__(self, name):
        if name not in self._values:
            raise AttributeError(f"option '{name}' does not exist")
        return self._values[name]

    def __setattr__(self, name, value):
        self._values[name] = value

    def __delattr__(self, name):
        del self._values[name]

    def rm_safe(self, name):
        self._values.pop(name, None)

    def get_safe(self, name, default=None):
        return self._values.get(name, default)

    def items(self):
        return self._values.items()


class _Component:
    def __init__(self):
        self.libs, self.requires, self.system_libs = [], [], []
        self.properties = {}

    def set_property(self, name, value):
        self.properties[name] = value


class _CppInfo(_Component):
    def __init__(self):
        super().__init__()
        self.components = _Components()


class _Components(dict):
    def __missing__(self, key):
        self[key] = _Component()
        return self[key]


class _Dependency:
    def __init__(self):
        self.options = _Options({})


class ConanFile:
    def __init__(self, settings, options, folders):
        self.settings = settings
        opts = dict(type(self).default_options)
        opts.update(options)
        self.options = _Options(opts)
        self.cpp_info = _CppInfo()
        self.dependencies = {"boost": _Dependency(), "hiredis": _Dependency()}
        self.recipe_folder, self.source_folder, self.package_folder = folders
        self.cache_variables = {}
        self.ref = "orchcore"


def check_min_cppstd(conanfile, cppstd):
    have = conanfile.settings.compiler.cppstd
    if int(str(have).replace("gnu", "")) < int(cppstd):
        raise ConanInvalidConfiguration(f"requires C++{cppstd}, have {have}")


class Version:
    def __init__(self, v):
        self.parts = tuple(int(p) for p in str(v).split("."))

    def __lt__(self, other):
        return self.parts < Version(other).parts


class CMakeToolchain:
    def __init__(self, conanfile):
        self._conanfile = conanfile
        self.cache_variables = {}

    def generate(self):
        options = self._conanfile.options
        variables = {"BUILD_SHARED_LIBS": bool(options.get_safe("shared"))}
        if options.get_safe("fPIC") is not None:
            variables["CMAKE_POSITION_INDEPENDENT_CODE"] = bool(options.fPIC)
        variables.update(self.cache_variables)
        self._conanfile.cache_variables = variables


class _NoOp:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def copy(conanfile, pattern, src, dst):
    for name in os.listdir(src):
        if fnmatch.fnmatch(name, pattern):
            os.makedirs(dst, exist_ok=True)
            shutil.copy2(os.path.join(src, name), dst)


def load(conanfile, path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rmdir(conanfile, path):
    shutil.rmtree(path, ignore_errors=True)


def _install_stand_in():
    modules = {
        "conan": {"ConanFile": ConanFile},
        "conan.errors": {"ConanInvalidConfiguration": ConanInvalidConfiguration},
        "conan.tools": {},
        "conan.tools.build": {"check_min_cppstd": check_min_cppstd, "can_run": lambda c: True},
        "conan.tools.cmake": {"CMake": _NoOp, "CMakeDeps": _NoOp, "CMakeToolchain": CMakeToolchain,
                              "cmake_layout": lambda *a, **k: None},
        "conan.tools.files": {"copy": copy, "load": load, "rmdir": rmdir},
        "conan.tools.scm": {"Version": Version},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


def _load_recipe(args):
    _install_stand_in()
    spec = importlib.util.spec_from_file_location("recipe", args.recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recipe_class = next(v for v in vars(module).values()
                        if isinstance(v, type) and issubclass(v, ConanFile) and v is not ConanFile)
    settings_values = dict(s.split("=", 1) for s in args.s)
    settings = types.SimpleNamespace(
        os=_Value(settings_values.get("os", "Linux")),
        arch=_Value("x86_64"),
        build_type=_Value(settings_values.get("build_type", "Release")),
        compiler=_Value("gcc", version=_Value("12"), cppstd=_Value("20")))
    options = {}
    for o in args.o:
        key, value = o.split("=", 1)
        options[key] = value == "True"
    recipe = recipe_class(settings, options, (os.path.dirname(args.recipe), args.source, args.package))
    recipe.set_version()
    recipe.config_options()
    recipe.configure()
    return recipe


# --- phases ----------------------------------------------------------------


def cmake_args(recipe, _):
    recipe.validate()
    recipe.generate()
    for key, value in recipe.cache_variables.items():
        if isinstance(value, bool):
            value = "ON" if value else "OFF"
        print(f"-D{key}={value}")


# Installed link items and the Conan requirement (or system library) each corresponds to.
_LINK_ITEM_TO_CONAN = {
    "Threads::Threads": ("system_lib", "pthread"),
    "Boost::headers": ("requires", "boost::headers"),
    "Boost::json": ("requires", "boost::json"),
    "hiredis::hiredis": ("requires", "hiredis::hiredis"),
}
# Private dependencies of a shared library: Conan still requires them; the
# library records them as DT_NEEDED entries.
_PRIVATE_DEP_SONAME = {"hiredis::hiredis": b"libhiredis.so", "boost::json": b"libboost_json.so"}


def _installed_targets(package):
    cmakedir = os.path.join(package, "lib", "cmake", "orchcore")
    targets = {}
    for name in sorted(os.listdir(cmakedir)):
        if not re.match(r"orchcore\w*Targets.*\.cmake$", name):
            continue
        text = load(None, os.path.join(cmakedir, name))
        for target, body in re.findall(r"set_target_properties\((orchcore::\w+) PROPERTIES(.*?)\n\s*\)", text, re.S):
            entry = targets.setdefault(target, {"links": [], "file": None})
            links = re.search(r'INTERFACE_LINK_LIBRARIES "([^"]*)"', body)
            if links:
                items = [re.sub(r"^\\?\$<LINK_ONLY:(.*)>$", r"\1", i) for i in links.group(1).split(";") if i]
                entry["links"] = items
            location = re.search(r'IMPORTED_LOCATION_\w+ "\$\{_IMPORT_PREFIX\}/([^"]+)"', body)
            if location:
                entry["file"] = location.group(1)
    return targets


def _expected_requirements(targets, links):
    requires, system_libs = [], []
    for item in links:
        if item in targets:
            requires.append(("component", item))
        elif item in _LINK_ITEM_TO_CONAN:
            kind, name = _LINK_ITEM_TO_CONAN[item]
            (system_libs if kind == "system_lib" else requires).append(name)
        else:
            raise SystemExit(f"installed link item '{item}' has no known Conan counterpart")
    return requires, system_libs


def check(recipe, args):
    recipe.package_info()
    targets = _installed_targets(args.package)
    by_target = {c.properties.get("cmake_target_name"): (name, c)
                 for name, c in recipe.cpp_info.components.items()}
    errors = []
    if recipe.cpp_info.properties.get("cmake_target_name") not in targets:
        errors.append("the root target is not an installed target")
    for target, info in targets.items():
        if info["file"] is None:
            continue  # the interface target orchcore::orchcore: the root
        if target not in by_target:
            errors.append(f"installed target {target} has no component")
            continue
        name, component = by_target[target]
        lib = re.match(r"(?:.*/)?lib(.+?)\.(?:so|a)(?:\..*)?$", info["file"]).group(1)
        if component.libs != [lib]:
            errors.append(f"component {name}: libs {component.libs}, installed {lib}")
        requires, system_libs = _expected_requirements(targets, info["links"])
        requires = [by_target[r[1]][0] if isinstance(r, tuple) else r for r in requires]
        extra = component.requires[len(requires):]
        if component.requires[:len(requires)] != requires:
            errors.append(f"component {name}: requires {component.requires}, installed target links {requires}")
        binary = open(os.path.join(args.package, info["file"]), "rb").read()
        for dep in extra:
            if dep not in _PRIVATE_DEP_SONAME or _PRIVATE_DEP_SONAME[dep] not in binary:
                errors.append(f"component {name}: requires {dep}, which the installed library does not use")
        if sorted(component.system_libs) != sorted(system_libs):
            errors.append(f"component {name}: system_libs {component.system_libs}, installed {system_libs}")
        print(f"{target}: component '{name}', libs {component.libs}, requires {component.requires}")
    if not any(info["file"] for info in targets.values()):
        errors.append(f"no installed library found in {args.package}/lib/cmake/orchcore")
    for target in by_target:
        if target not in targets:
            errors.append(f"component target {target} is not installed")
    if errors:
        raise SystemExit("package_info() does not match the installed targets:\n  " + "\n  ".join(errors))


def package(recipe, _):
    recipe.package()


_CONAN_TO_CMAKE = {"boost::headers": "Boost::headers", "boost::json": "Boost::json",
                   "hiredis::hiredis": "hiredis::hiredis"}


def cmakedeps(recipe, args):
    recipe.package_info()
    out = args.extra[0]
    os.makedirs(out, exist_ok=True)
    components = recipe.cpp_info.components
    lines = ["# orchcore-config.cmake as CMakeDeps would write it from package_info().",
             "include(CMakeFindDependencyMacro)",
             "find_dependency(Boost CONFIG COMPONENTS headers json)"]
    if any("hiredis::hiredis" in c.requires for c in components.values()):
        lines += ["if(NOT TARGET hiredis::hiredis)",
                  "  find_package(PkgConfig REQUIRED)",
                  "  pkg_check_modules(conan_hiredis REQUIRED IMPORTED_TARGET hiredis)",
                  "  add_library(hiredis::hiredis INTERFACE IMPORTED)",
                  "  target_link_libraries(hiredis::hiredis INTERFACE PkgConfig::conan_hiredis)",
                  "endif()"]
    libdir = os.path.join(args.package, "lib")
    for name, c in components.items():
        target = c.properties["cmake_target_name"]
        files = [f for f in os.listdir(libdir) for lib in c.libs if f in (f"lib{lib}.so", f"lib{lib}.a")]
        if len(files) != 1:
            raise SystemExit(f"component {name}: libs {c.libs} not found in {libdir}")
        links = [components[r].properties["cmake_target_name"] if r in components else _CONAN_TO_CMAKE[r]
                 for r in c.requires] + c.system_libs
        lines += [f"add_library({target} UNKNOWN IMPORTED)",
                  f"set_target_properties({target} PROPERTIES",
                  f'  IMPORTED_LOCATION "{os.path.join(libdir, files[0])}"',
                  f'  INTERFACE_INCLUDE_DIRECTORIES "{os.path.join(args.package, "include")}"',
                  f'  INTERFACE_LINK_LIBRARIES "{";".join(links)}")']
    root = recipe.cpp_info.properties["cmake_target_name"]
    all_targets = ";".join(c.properties["cmake_target_name"] for c in components.values())
    lines += [f"add_library({root} INTERFACE IMPORTED)",
              f'set_target_properties({root} PROPERTIES INTERFACE_LINK_LIBRARIES "{all_targets}")']
    with open(os.path.join(out, "orchcore-config.cmake"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "orchcore-config-version.cmake"), "w", encoding="utf-8") as f:
        f.write(f'set(PACKAGE_VERSION "{recipe.version}")\n'
                "if(PACKAGE_FIND_VERSION_MAJOR STREQUAL \"\" OR (PACKAGE_FIND_VERSION_MAJOR EQUAL "
                f"{recipe.version.split('.')[0]} AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION))\n"
                "  set(PACKAGE_VERSION_COMPATIBLE TRUE)\nendif()\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("-o", action="append", default=[], help="option=True|False")
    parser.add_argument("-s", action="append", default=[], help="setting=value")
    parser.add_argument("phase", choices=["cmake-args", "check", "package", "cmakedeps"])
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    recipe = _load_recipe(args)
    {"cmake-args": cmake_args, "check": check, "package": package, "cmakedeps": cmakedeps}[args.phase](recipe, args)


if __name__ == "__main__":
    main()
