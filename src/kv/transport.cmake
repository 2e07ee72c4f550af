# The Raft message codec (src/consensus/raft/codec.*) lives here so that the consensus folder's
# CMakeLists.txt stays with the core; the peer transport between dtxkv nodes uses it.
add_library(dtx_raft_codec ${CMAKE_SOURCE_DIR}/src/consensus/raft/codec.cc)
target_link_libraries(dtx_raft_codec PUBLIC dtx_raft)

dtx_test(raft_codec_test ${CMAKE_SOURCE_DIR}/src/consensus/raft/codec_test.cc)
target_link_libraries(raft_codec_test PRIVATE dtx_raft_codec)

# The TCP transport between dtxkv nodes (raft::Message frames over one connection per peer).
add_library(dtx_kv_transport transport.cc)
target_link_libraries(dtx_kv_transport PUBLIC dtx_raft_codec dtx_base Boost::boost Threads::Threads
  PRIVATE dtx_wal spdlog::spdlog)

dtx_test(kv_transport_test transport_test.cc)
target_link_libraries(kv_transport_test PRIVATE dtx_kv_transport dtx_wal)
