# orchcore_extract_snippets(<out_var> <gen_dir> <md_file>...)
#
# Writes every ```cpp block of the given Markdown files to its own
# translation unit in <gen_dir> and returns the list of files in <out_var>.
# A block's #include lines stay at file scope; the rest becomes the body of
# a function, so statement fragments compile as they are written.
#
# An HTML comment on the line right before the opening fence (blank lines
# between are allowed) adjusts that block; words may be combined:
#
#   <!-- snippet: prelude=engine -->   #include "engine.hpp" from tests/snippets/
#                                      (declares what the fragment uses but
#                                      does not define: handlers, inputs...)
#   <!-- snippet: toplevel -->         compile the block at file scope
#                                      (implied by a block that defines main)
#   <!-- snippet: skip <reason> -->    not compiled (keep these rare)
#
# Files are rewritten only when their content changes, and generated files
# of blocks that no longer exist are removed.

function(_orchcore_snippet_decode out text)
  string(ASCII 1 _semi)
  string(ASCII 2 _lb)
  string(ASCII 3 _rb)
  string(REPLACE "${_semi}" ";" text "${text}")
  string(REPLACE "${_lb}" "[" text "${text}")
  string(REPLACE "${_rb}" "]" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Splits `content` into a list of lines; ; [ ] are encoded so that CMake's
# list handling leaves C++ code intact (decode with _orchcore_snippet_decode).
function(_orchcore_snippet_lines out content)
  string(ASCII 1 _semi)
  string(ASCII 2 _lb)
  string(ASCII 3 _rb)
  string(REPLACE ";" "${_semi}" content "${content}")
  string(REPLACE "[" "${_lb}" content "${content}")
  string(REPLACE "]" "${_rb}" content "${content}")
  string(REPLACE "\r" "" content "${content}")
  string(REPLACE "\n" ";" content "${content}")
  set(${out} "${content}" PARENT_SCOPE)
endfunction()

# Writes one block (its lines in `lines`, a list) as <gen_dir>/<name>.cpp.
function(_orchcore_snippet_write out_file gen_dir name md source line options lines)
  set(includes "")
  set(body "")
  foreach(l IN LISTS lines)
    _orchcore_snippet_decode(l "${l}")
    if(l MATCHES "^[ \t]*#[ \t]*include")
      string(APPEND includes "${l}\n")
      string(APPEND body "\n")  # keeps the #line mapping exact
    else()
      string(APPEND body "${l}\n")
    endif()
  endforeach()
  set(text "// Generated from ${source}:${line} by tests/snippets/extract_snippets.cmake.\n")
  string(APPEND text "${includes}")
  if(options MATCHES "prelude=([A-Za-z0-9_]+)")
    string(APPEND text "#include \"${CMAKE_MATCH_1}.hpp\"\n")
  endif()
  if(options MATCHES "(^| )toplevel( |$)" OR body MATCHES "(^|\n)int main\\(")
    string(APPEND text "#line ${line} \"${md}\"\n${body}")
  else()
    string(APPEND text "\n[[maybe_unused]] static auto orchcore_snippet_${name}() {\n#line ${line} \"${md}\"\n${body}}\n")
  endif()
  set(file "${gen_dir}/${name}.cpp")
  file(WRITE "${file}.tmp" "${text}")
  file(COPY_FILE "${file}.tmp" "${file}" ONLY_IF_DIFFERENT)
  file(REMOVE "${file}.tmp")
  set(${out_file} "${file}" PARENT_SCOPE)
endfunction()

# The blocks of one Markdown file.
function(_orchcore_snippets_of out gen_dir md)
  file(READ "${md}" content)
  _orchcore_snippet_lines(lines "${content}")
  file(RELATIVE_PATH source "${PROJECT_SOURCE_DIR}" "${md}")
  string(MAKE_C_IDENTIFIER "${source}" stem)
  set(files "")
  set(options "")
  set(in_block FALSE)
  set(n 0)
  foreach(l IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(in_block)
      if(l MATCHES "^[ \t]*```")
        set(in_block FALSE)
        if(NOT options MATCHES "(^| )skip( |$)")
          _orchcore_snippet_write(f "${gen_dir}" "${stem}_${start}" "${md}" "${source}" "${start}" "${options}" "${block}")
          list(APPEND files "${f}")
        endif()
        set(options "")
      else()
        list(APPEND block "${l}")
      endif()
    elseif(l MATCHES "^[ \t]*```[ \t]*(cpp|c\\+\\+|cxx)[ \t]*$")
      set(in_block TRUE)
      math(EXPR start "${n} + 1")
      set(block "")
    elseif(l MATCHES "^[ \t]*<!--[ \t]*snippet:(.*)-->[ \t]*$")
      string(STRIP "${CMAKE_MATCH_1}" options)
    elseif(NOT l MATCHES "^[ \t]*$")
      set(options "")  # a marker applies to the very next block only
    endif()
  endforeach()
  set(${out} "${files}" PARENT_SCOPE)
endfunction()

function(orchcore_extract_snippets out gen_dir)
  file(MAKE_DIRECTORY "${gen_dir}")
  set(all "")
  foreach(md IN LISTS ARGN)
    _orchcore_snippets_of(files "${gen_dir}" "${md}")
    list(APPEND all ${files})
  endforeach()
  file(GLOB stale "${gen_dir}/*.cpp")
  foreach(f IN LISTS stale)
    if(NOT f IN_LIST all)
      file(REMOVE "${f}")
    endif()
  endforeach()
  set(${out} "${all}" PARENT_SCOPE)
endfunction()
