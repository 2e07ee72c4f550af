# Installation of the C++ SDK (install component "sdk"):
#   <prefix>/include/dtx/*.h                   the public headers (every one in include/dtx/)
#   <prefix>/lib/libdtx_sdk.a, ...              dtx_sdk and every in-tree library it links
#   <prefix>/lib/cmake/dtx/dtxConfig*.cmake     find_package(dtx CONFIG): target dtx::sdk
#   <prefix>/lib/pkgconfig/dtx.pc               pkg-config --cflags --libs dtx
# The dependencies written into dtxConfig.cmake and dtx.pc are derived from what dtx_sdk actually
# links (walked below), so SDK fragments that add a backend need no change here unless they link
# something this file does not know (a warning then names it).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
find_package(PkgConfig QUIET)

set(DTX_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/dtx)

# Known imported targets: the find_dependency() line for dtxConfig.cmake, the pkg-config module
# (for Requires.private, empty when there is none) and the flags for Libs.
function(_dtx_describe_imported lib out_find out_pcmod out_libs)
  set(${out_find} "" PARENT_SCOPE)
  set(${out_pcmod} "" PARENT_SCOPE)
  set(${out_libs} "" PARENT_SCOPE)
  set(find "")
  set(pcmod "")
  set(libs "")
  if(lib STREQUAL "Threads::Threads")
    set(find "find_dependency(Threads)")
    set(libs "-pthread")
  elseif(lib STREQUAL "SQLite::SQLite3")
    set(find "find_dependency(SQLite3)")
    set(pcmod "sqlite3")
    set(libs "-lsqlite3")
  elseif(lib STREQUAL "PostgreSQL::PostgreSQL")
    set(find "find_dependency(PostgreSQL)")
    set(pcmod "libpq")
    set(libs "-lpq")
  elseif(lib STREQUAL "nlohmann_json::nlohmann_json")
    set(find "find_dependency(nlohmann_json)")
  elseif(lib MATCHES "^Boost::(.*)$")
    set(component ${CMAKE_MATCH_1})
    if(component STREQUAL "boost" OR component STREQUAL "headers")
      set(find "find_dependency(Boost ${Boost_MAJOR_VERSION}.${Boost_MINOR_VERSION})")
    else()
      set(find "find_dependency(Boost ${Boost_MAJOR_VERSION}.${Boost_MINOR_VERSION} COMPONENTS ${component})")
      set(libs "-lboost_${component}")
    endif()
  elseif(lib MATCHES "^PkgConfig::(.*)$")
    # pkg_check_modules(<prefix> IMPORTED_TARGET <module>) ran in one of the SDK's directories;
    # its <prefix>_MODULE_NAME names the module to look up again in the consumer.
    set(prefix ${CMAKE_MATCH_1})
    foreach(dir ${CMAKE_SOURCE_DIR}/src/sdk ${CMAKE_SOURCE_DIR}/src/runtime ${CMAKE_SOURCE_DIR}/src/base)
      get_directory_property(module DIRECTORY ${dir} DEFINITION ${prefix}_MODULE_NAME)
      if(module)
        break()
      endif()
    endforeach()
    if(NOT module)
      message(WARNING "install.cmake: cannot tell which pkg-config module ${lib} is; the installed "
                      "dtx package will not find it")
      return()
    endif()
    set(find "find_dependency(PkgConfig)\nif(NOT TARGET ${lib})\n  pkg_check_modules(${prefix} REQUIRED QUIET IMPORTED_TARGET ${module})\nendif()")
    set(pcmod ${module})
    execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --libs ${module} OUTPUT_VARIABLE libs
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      set(libs "")
    endif()
  else()
    message(WARNING "install.cmake: dtx_sdk links ${lib}, which the installed dtx package does not "
                    "know how to find; add it to _dtx_describe_imported")
  endif()
  set(${out_find} "${find}" PARENT_SCOPE)
  set(${out_pcmod} "${pcmod}" PARENT_SCOPE)
  set(${out_libs} "${libs}" PARENT_SCOPE)
endfunction()

# Depth-first walk of a library's link dependencies, recorded in global properties:
#   DTX_WALK_TARGETS   in-tree libraries in post-order (each after everything it links)
#   DTX_WALK_IMPORTED  imported targets; a name with "::" counts as one even where TARGET cannot
#                      see it (find modules create directory-local imported targets)
#   DTX_WALK_PLAIN     plain libraries (find_library() paths, bare names) and linker flags
function(_dtx_walk lib)
  string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" lib "${lib}")
  get_property(seen GLOBAL PROPERTY DTX_WALK_SEEN)
  if(lib STREQUAL "" OR lib MATCHES "-NOTFOUND$" OR lib IN_LIST seen)
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY DTX_WALK_SEEN ${lib})
  if(TARGET ${lib})
    get_target_property(alias ${lib} ALIASED_TARGET)
    get_target_property(imported ${lib} IMPORTED)
    if(alias)
      _dtx_walk(${alias})
    elseif(imported)
      set_property(GLOBAL APPEND PROPERTY DTX_WALK_IMPORTED ${lib})
    else()
      get_target_property(links ${lib} LINK_LIBRARIES)
      get_target_property(interface_links ${lib} INTERFACE_LINK_LIBRARIES)
      foreach(l IN LISTS links interface_links)
        _dtx_walk("${l}")
      endforeach()
      set_property(GLOBAL APPEND PROPERTY DTX_WALK_TARGETS ${lib})
    endif()
  elseif(lib MATCHES "::")
    set_property(GLOBAL APPEND PROPERTY DTX_WALK_IMPORTED ${lib})
  elseif(lib MATCHES "^\\$<")
    message(WARNING "install.cmake: dtx_sdk links the generator expression ${lib}, which dtx.pc "
                    "does not cover")
  else()
    set_property(GLOBAL APPEND PROPERTY DTX_WALK_PLAIN ${lib})
  endif()
endfunction()

_dtx_walk(dtx_sdk)
get_property(_dtx_post GLOBAL PROPERTY DTX_WALK_TARGETS)
get_property(_dtx_imported GLOBAL PROPERTY DTX_WALK_IMPORTED)
get_property(_dtx_plain GLOBAL PROPERTY DTX_WALK_PLAIN)
# Reverse post-order: every library before the ones it links, as static linking needs.
set(DTX_INSTALL_TARGETS ${_dtx_post})
list(REVERSE DTX_INSTALL_TARGETS)

set(_dtx_find "")
set(_dtx_pc_requires_private "")
set(_dtx_pc_dep_libs "")
foreach(_dtx_lib ${_dtx_imported})
  _dtx_describe_imported(${_dtx_lib} _dtx_f _dtx_m _dtx_l)
  if(_dtx_f)
    list(APPEND _dtx_find "${_dtx_f}")
  endif()
  list(APPEND _dtx_pc_requires_private ${_dtx_m})
  if(_dtx_l)
    list(APPEND _dtx_pc_dep_libs "${_dtx_l}")
  endif()
endforeach()
foreach(_dtx_lib ${_dtx_plain})
  if(_dtx_lib MATCHES "^-")
    list(APPEND _dtx_pc_dep_libs ${_dtx_lib})
  else()
    # The export keeps a plain library as it is; dtx.pc gets it as -l<name>, and its pkg-config
    # module (lib<name> or <name>) as Requires.private when there is one.
    get_filename_component(_dtx_name ${_dtx_lib} NAME_WE)
    string(REGEX REPLACE "^lib" "" _dtx_name ${_dtx_name})
    list(APPEND _dtx_pc_dep_libs -l${_dtx_name})
    if(PKG_CONFIG_EXECUTABLE)
      foreach(_dtx_module lib${_dtx_name} ${_dtx_name})
        execute_process(COMMAND ${PKG_CONFIG_EXECUTABLE} --exists ${_dtx_module}
                        RESULT_VARIABLE _dtx_rc)
        if(_dtx_rc EQUAL 0)
          list(APPEND _dtx_pc_requires_private ${_dtx_module})
          break()
        endif()
      endforeach()
    endif()
  endif()
endforeach()
list(REMOVE_DUPLICATES _dtx_find)
list(REMOVE_DUPLICATES _dtx_pc_requires_private)
list(REMOVE_DUPLICATES _dtx_pc_dep_libs)
# Threads first, then the rest, one per line.
list(SORT _dtx_find)
list(FIND _dtx_find "find_dependency(Threads)" _dtx_threads)
if(_dtx_threads GREATER 0)
  list(REMOVE_AT _dtx_find ${_dtx_threads})
  list(PREPEND _dtx_find "find_dependency(Threads)")
endif()
string(REPLACE ";" "\n" DTX_FIND_DEPENDENCIES "${_dtx_find}")
string(REPLACE ";" ", " DTX_PC_REQUIRES_PRIVATE "${_dtx_pc_requires_private}")
# -pthread last: the libraries before it may need it.
list(REMOVE_ITEM _dtx_pc_dep_libs -pthread)
if("Threads::Threads" IN_LIST _dtx_imported)
  list(APPEND _dtx_pc_dep_libs -pthread)
endif()
string(REPLACE ";" " " DTX_PC_DEP_LIBS "${_dtx_pc_dep_libs}")
set(DTX_PC_LIBS "")
foreach(_dtx_t ${DTX_INSTALL_TARGETS})
  string(APPEND DTX_PC_LIBS " -l${_dtx_t}")
endforeach()
string(STRIP "${DTX_PC_LIBS}" DTX_PC_LIBS)
# Public headers include <nlohmann/json.hpp>, so its module (when it has one) is a public Requires.
set(DTX_PC_REQUIRES "")
if("nlohmann_json::nlohmann_json" IN_LIST _dtx_imported)
  set(DTX_PC_REQUIRES "nlohmann_json")
endif()

# The public headers need C++20; consumers of the exported targets get it from here.
target_compile_features(dtx_sdk INTERFACE cxx_std_20)

# Targets are exported as dtx::sdk, dtx::runtime, dtx::base.
foreach(_dtx_t ${DTX_INSTALL_TARGETS})
  string(REGEX REPLACE "^dtx_" "" _dtx_export_name ${_dtx_t})
  set_target_properties(${_dtx_t} PROPERTIES EXPORT_NAME ${_dtx_export_name})
endforeach()

install(TARGETS ${DTX_INSTALL_TARGETS}
  EXPORT dtxTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# A directory install globs at install time, so headers added later need no change here.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/dtx
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT sdk
  FILES_MATCHING PATTERN "*.h")
install(EXPORT dtxTargets
  NAMESPACE dtx::
  DESTINATION ${DTX_INSTALL_CMAKEDIR} COMPONENT sdk)

configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/dtxConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/dtxConfig.cmake
  INSTALL_DESTINATION ${DTX_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/dtxConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/dtxConfig.cmake ${CMAKE_BINARY_DIR}/cmake/dtxConfigVersion.cmake
  DESTINATION ${DTX_INSTALL_CMAKEDIR} COMPONENT sdk)

# dtx.pc finds the prefix from its own location (cmake --install --prefix may differ from
# CMAKE_INSTALL_PREFIX), so it needs the way up from <libdir>/pkgconfig to the prefix.
if(IS_ABSOLUTE ${CMAKE_INSTALL_LIBDIR})
  message(WARNING "install.cmake: CMAKE_INSTALL_LIBDIR is absolute; dtx.pc will not be relocatable")
  set(DTX_PC_PREFIX ${CMAKE_INSTALL_PREFIX})
  set(DTX_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
else()
  file(RELATIVE_PATH _dtx_up /x/${CMAKE_INSTALL_LIBDIR}/pkgconfig /x)
  string(REGEX REPLACE "/$" "" _dtx_up "${_dtx_up}")
  set(DTX_PC_PREFIX "\${pcfiledir}/${_dtx_up}")
  set(DTX_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE ${CMAKE_INSTALL_INCLUDEDIR})
  set(DTX_PC_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
else()
  set(DTX_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/dtx.pc.in ${CMAKE_BINARY_DIR}/cmake/dtx.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cmake/dtx.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT sdk)
