# The state machine and the node (Raft + WAL + transport + HTTP API). Beast stays in runtime/.
add_library(dtx_kv_state state_machine.cc)
target_link_libraries(dtx_kv_state PUBLIC dtx_base PRIVATE dtx_rocksdb)
dtx_test(kv_state_machine_test state_machine_test.cc)
target_link_libraries(kv_state_machine_test PRIVATE dtx_kv_state)

if(TARGET dtx_kv_transport)
  add_library(dtx_kv_node node.cc)
  target_link_libraries(dtx_kv_node PUBLIC dtx_kv_state dtx_kv_transport dtx_raft_wal dtx_runtime
    dtx_base PRIVATE fmt::fmt nlohmann_json::nlohmann_json Boost::boost Threads::Threads)
endif()
