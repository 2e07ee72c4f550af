# The Raft message codec (src/consensus/raft/codec.*) lives here so that the consensus folder's
# CMakeLists.txt stays with the core; the peer transport between dtxkv nodes uses it.
add_library(dtx_raft_codec ${CMAKE_SOURCE_DIR}/src/consensus/raft/codec.cc)
target_link_libraries(dtx_raft_codec PUBLIC dtx_raft)

dtx_test(raft_codec_test ${CMAKE_SOURCE_DIR}/src/consensus/raft/codec_test.cc)
target_link_libraries(raft_codec_test PRIVATE dtx_raft_codec)
