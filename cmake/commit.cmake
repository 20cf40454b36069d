# Writes OUT, the header version.c includes: VAURIEN_VERSION and
# VAURIEN_COMMIT, the commit the sources are at. Run at every build (not
# only at configure time), so a new commit shows without a new cmake; OUT
# is rewritten only when its text changes, so nothing else rebuilds.
#
# The commit: COMMIT when given (-DVAURIEN_COMMIT=..., for builds from a
# tarball of a known commit, as `make deb` does), else git's HEAD when
# SOURCE_DIR is the top of a git work tree ("-dirty" if tracked files
# differ from it), else "unknown". A tree unpacked inside another
# repository's work tree does not take that repository's commit.
set(commit "${COMMIT}")
if(commit STREQUAL "")
  set(commit "unknown")
  find_program(GIT git)
  if(GIT)
    execute_process(COMMAND ${GIT} -C "${SOURCE_DIR}" rev-parse --show-toplevel
                    OUTPUT_VARIABLE top RESULT_VARIABLE rc ERROR_QUIET
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    get_filename_component(src "${SOURCE_DIR}" REALPATH)
    if(rc EQUAL 0)
      get_filename_component(top "${top}" REALPATH)
    endif()
    if(rc EQUAL 0 AND top STREQUAL src)
      execute_process(COMMAND ${GIT} -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                      OUTPUT_VARIABLE head RESULT_VARIABLE rc ERROR_QUIET
                      OUTPUT_STRIP_TRAILING_WHITESPACE)
      if(rc EQUAL 0 AND NOT head STREQUAL "")
        set(commit "${head}")
        execute_process(COMMAND ${GIT} -C "${SOURCE_DIR}" diff --quiet HEAD --
                        RESULT_VARIABLE dirty ERROR_QUIET)
        if(dirty EQUAL 1)
          string(APPEND commit "-dirty")
        endif()
      endif()
    endif()
  endif()
endif()
set(text "/* made by cmake/commit.cmake; do not edit */\n#define VAURIEN_VERSION \"${VERSION}\"\n#define VAURIEN_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
else()
  set(old "")
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
