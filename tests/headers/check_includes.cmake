# Compiles SOURCE with `-H` (the compiler lists every header it opens) and
# fails if any header matching one of the |-separated FORBIDDEN paths is
# among them, or if SOURCE does not compile.
string(REPLACE "|" ";" _forbidden "${FORBIDDEN}")
execute_process(
  COMMAND "${CXX}" -std=c++20 "-I${INCLUDE_DIR}" -H -fsyntax-only "${SOURCE}"
  RESULT_VARIABLE _rc
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} does not compile:\n${_err}")
endif()
set(_found "")
foreach(_path IN LISTS _forbidden)
  string(FIND "${_err}" "${_path}" _at)
  if(NOT _at EQUAL -1)
    list(APPEND _found "${_path}")
  endif()
endforeach()
if(_found)
  message(FATAL_ERROR "${SOURCE} pulls in ${_found}; its headers must not include them")
endif()
string(REGEX MATCHALL "[^\n]*include/orchcore/[^\n]*" _orchcore_lines "${_err}")
list(LENGTH _orchcore_lines _count)
message(STATUS "${SOURCE}: ${_count} orchcore headers opened, none of ${FORBIDDEN}")
