# Component check shared by orchcoreConfig.cmake and, for FetchContent's
# OVERRIDE_FIND_PACKAGE, orchcore-extra.cmake. Expects orchcore_<c>_FOUND
# and _orchcore_<c>_reason (why the component is missing) to be set for each
# known component <c>.
# A required component that is missing or unknown makes find_package() fail
# with a message naming it; an optional one only sets
# orchcore_<component>_FOUND to FALSE.
set(_orchcore_known_components redis yaml)

foreach(_orchcore_comp IN LISTS orchcore_FIND_COMPONENTS)
  list(FIND _orchcore_known_components "${_orchcore_comp}" _orchcore_index)
  if(_orchcore_index EQUAL -1)
    set(orchcore_${_orchcore_comp}_FOUND FALSE)
    set(_orchcore_why "orchcore: unknown component '${_orchcore_comp}' (known: redis, yaml)")
  elseif(NOT orchcore_${_orchcore_comp}_FOUND)
    set(_orchcore_why "orchcore: component '${_orchcore_comp}' is not available: ${_orchcore_${_orchcore_comp}_reason}")
  else()
    continue()
  endif()
  if(orchcore_FIND_REQUIRED_${_orchcore_comp})
    set(orchcore_FOUND FALSE)
    set(orchcore_NOT_FOUND_MESSAGE "${_orchcore_why}")
    break()
  elseif(NOT orchcore_FIND_QUIETLY)
    message(STATUS "${_orchcore_why}")
  endif()
endforeach()

unset(_orchcore_comp)
unset(_orchcore_index)
unset(_orchcore_why)
unset(_orchcore_known_components)
