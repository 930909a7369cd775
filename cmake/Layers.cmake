# The layer rule, enforced by the compiler. Each top-level folder is a layer and may include
# only the layers below it (README "Layers"):
#
#   common <- workloads <- kernels <- layers <- model <- harness <- harness/cli
#                       <- comm ---------------------^
#
# plus the plug-in API (the few harness headers a kernel, layer or collective benchmark
# includes to register itself). Nothing compiles against the source root: at configure time
# every layer gets an include "view", ${PROJECT_BINARY_DIR}/include-views/<layer>/, holding
# symlinks to exactly what it may include, and seqscale_apply_layer_views() gives each
# source file the view of the folder it lives in. An include that goes the wrong way fails
# with the compiler's "No such file or directory". tests/ sees the whole source root.
#
# The views are rebuilt on every configure; the globs below are CONFIGURE_DEPENDS, so a new
# header in a restricted set (a kernel's *_cost.h, a top-level harness file) reaches the
# views on the next build without a manual re-run of cmake.

# The plug-in API: the only harness headers below harness. What they include themselves
# must be in a layer the plug-in sees (common/, workloads/) or in this list.
set(SEQSCALE_PLUGIN_API
  harness/bench/registry.h        # SEQSCALE_BENCH, BenchState: every benchmark plug-in
  harness/steps/step_executor.h   # replays a layer's StepProgram (layers' "steps" benches)
  harness/nvtx.h                  # NvtxRange: named profiler ranges inside a timed body
  harness/rank_context.h          # the launch's ranks (the NCCL collective plug-in's bootstrap)
  harness/gpu_runtime.h)          # which GPU the point runs on (a bench's device peak for MFU)

# What each layer's view holds. A plain folder name is the whole folder; "plugin-api" is
# the list above; "model-declarations" is kernels' *_cost.h and layers' recorders
# (*_program.h) and definitions (*_def.h) with the plain-C++ headers they include, never a
# .cuh; "harness-not-cli" is harness/ without cli/.
set(SEQSCALE_LAYER_VIEW_common    common)
set(SEQSCALE_LAYER_VIEW_workloads common workloads)
set(SEQSCALE_LAYER_VIEW_kernels   common workloads kernels plugin-api)
set(SEQSCALE_LAYER_VIEW_layers    common workloads kernels layers plugin-api)
set(SEQSCALE_LAYER_VIEW_comm      common workloads comm plugin-api)
set(SEQSCALE_LAYER_VIEW_model     common workloads model model-declarations)
set(SEQSCALE_LAYER_VIEW_harness   common workloads kernels layers comm model harness-not-cli)
set(SEQSCALE_LAYER_VIEW_cli       common workloads kernels layers comm model harness)
set(SEQSCALE_LAYERS common workloads kernels layers comm model harness cli)
set(SEQSCALE_INCLUDE_VIEWS_DIR ${PROJECT_BINARY_DIR}/include-views)

function(_seqscale_link rel_path view_dir)
  get_filename_component(parent ${view_dir}/${rel_path} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${rel_path} ${view_dir}/${rel_path} SYMBOLIC)
endfunction()

# Root-relative paths of the model's declarations: the seed headers and, transitively, the
# kernels/ and layers/ headers they include ("workloads/..." and "common/..." are whole in
# the model's view). A .cuh is left out, so the model can never reach CUDA code.
function(_seqscale_model_declarations out_var)
  file(GLOB seeds RELATIVE ${PROJECT_SOURCE_DIR} CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/kernels/*/*_cost.h
       ${PROJECT_SOURCE_DIR}/layers/*/*_program.h
       ${PROJECT_SOURCE_DIR}/layers/*/*_def.h)
  set(found "")
  set(queue ${seeds})
  while(queue)
    list(POP_FRONT queue header)
    if(header IN_LIST found OR header MATCHES "\\.cuh$" OR NOT EXISTS ${PROJECT_SOURCE_DIR}/${header})
      continue()
    endif()
    list(APPEND found ${header})
    file(STRINGS ${PROJECT_SOURCE_DIR}/${header} lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line IN LISTS lines)
      if(line MATCHES "\"((kernels|layers)/[^\"]+)\"")
        list(APPEND queue ${CMAKE_MATCH_1})
      endif()
    endforeach()
  endwhile()
  # An edit that adds an include to one of these headers must refresh the view.
  list(TRANSFORM found PREPEND ${PROJECT_SOURCE_DIR}/ OUTPUT_VARIABLE found_abs)
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${found_abs})
  set(${out_var} ${found} PARENT_SCOPE)
endfunction()

function(seqscale_make_layer_views)
  # Remove links only: file(REMOVE_RECURSE) deletes a symlink, never what it points to.
  file(REMOVE_RECURSE ${SEQSCALE_INCLUDE_VIEWS_DIR})
  _seqscale_model_declarations(model_declarations)
  file(GLOB harness_entries RELATIVE ${PROJECT_SOURCE_DIR} LIST_DIRECTORIES true CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/harness/*)
  list(FILTER harness_entries EXCLUDE REGEX "^harness/(cli|CMakeLists\\.txt)$")
  foreach(layer IN LISTS SEQSCALE_LAYERS)
    set(view ${SEQSCALE_INCLUDE_VIEWS_DIR}/${layer})
    file(MAKE_DIRECTORY ${view})
    foreach(entry IN LISTS SEQSCALE_LAYER_VIEW_${layer})
      if(entry STREQUAL "plugin-api")
        set(paths ${SEQSCALE_PLUGIN_API})
      elseif(entry STREQUAL "model-declarations")
        set(paths ${model_declarations})
      elseif(entry STREQUAL "harness-not-cli")
        set(paths ${harness_entries})
      else()
        set(paths ${entry})
      endif()
      foreach(path IN LISTS paths)
        if(NOT EXISTS ${PROJECT_SOURCE_DIR}/${path})
          message(FATAL_ERROR "layer view ${layer}: ${path} does not exist (cmake/Layers.cmake)")
        endif()
        _seqscale_link(${path} ${view})
      endforeach()
    endforeach()
  endforeach()
endfunction()

# The view for a source file: its top-level folder's (harness/cli/ is its own layer), the
# whole source root for tests/. A source anywhere else is a configure error: add its folder
# to the tables above.
function(_seqscale_view_for source out_var)
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${source})
  if(rel MATCHES "^tests/")
    set(${out_var} ${PROJECT_SOURCE_DIR} PARENT_SCOPE)
    return()
  endif()
  if(rel MATCHES "^harness/cli/")
    set(layer cli)
  elseif(rel MATCHES "^([^/]+)/")
    set(layer ${CMAKE_MATCH_1})
  else()
    set(layer "")
  endif()
  if(NOT layer OR NOT layer IN_LIST SEQSCALE_LAYERS)
    message(FATAL_ERROR "${rel} is in no layer: add its folder to SEQSCALE_LAYERS in cmake/Layers.cmake")
  endif()
  set(${out_var} ${SEQSCALE_INCLUDE_VIEWS_DIR}/${layer} PARENT_SCOPE)
endfunction()

function(_seqscale_targets_in dir out_var)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _seqscale_targets_in(${sub} sub_targets)
    list(APPEND targets ${sub_targets})
  endforeach()
  set(${out_var} ${targets} PARENT_SCOPE)
endfunction()

# Call once, after every add_subdirectory: every source of every target in the project gets
# its layer's view as its only seqscale include directory. Per source, not per target, so
# the flavour OBJECT libraries (seqscale_core, seqscale_cuda, seqscale_mpi) stay as they are
# and executables keep receiving all objects (self-registering plug-ins).
function(seqscale_apply_layer_views)
  _seqscale_targets_in(${PROJECT_SOURCE_DIR} targets)
  foreach(target IN LISTS targets)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "INTERFACE_LIBRARY" OR type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(sources ${target} SOURCES)
    get_target_property(target_dir ${target} SOURCE_DIR)
    foreach(source IN LISTS sources)
      if(source MATCHES "^\\$<")
        message(FATAL_ERROR "${target}: generator-expression source ${source} cannot get a layer view")
      endif()
      get_filename_component(abs ${source} ABSOLUTE BASE_DIR ${target_dir})
      _seqscale_view_for(${abs} view)
      set_source_files_properties(${abs} TARGET_DIRECTORY ${target} PROPERTIES INCLUDE_DIRECTORIES ${view})
    endforeach()
  endforeach()
endfunction()
