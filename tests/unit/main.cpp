// Catch2 v2 entry point for orchcore_tests (unit + property tests).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
