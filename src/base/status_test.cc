#include "base/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace dtx {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(Status::Ok(), s);
}

TEST(StatusTest, HelpersSetCodeAndMessage) {
  struct Case {
    Status status;
    StatusCode code;
    const char* name;
  };
  const Case cases[] = {
      {InvalidArgument("m"), StatusCode::kInvalidArgument, "INVALID_ARGUMENT"},
      {NotFound("m"), StatusCode::kNotFound, "NOT_FOUND"},
      {AlreadyExists("m"), StatusCode::kAlreadyExists, "ALREADY_EXISTS"},
      {FailedPrecondition("m"), StatusCode::kFailedPrecondition, "FAILED_PRECONDITION"},
      {Aborted("m"), StatusCode::kAborted, "ABORTED"},
      {Unavailable("m"), StatusCode::kUnavailable, "UNAVAILABLE"},
      {DeadlineExceeded("m"), StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED"},
      {ResourceExhausted("m"), StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED"},
      {DataLoss("m"), StatusCode::kDataLoss, "DATA_LOSS"},
      {Internal("m"), StatusCode::kInternal, "INTERNAL"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.status.ok()) << c.name;
    EXPECT_EQ(c.status.code(), c.code) << c.name;
    EXPECT_EQ(c.status.message(), "m") << c.name;
    EXPECT_EQ(StatusCodeName(c.code), c.name);
    EXPECT_EQ(c.status.ToString(), std::string(c.name) + ": m");
  }
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
}

TEST(StatusTest, EqualityComparesCodeAndMessage) {
  EXPECT_EQ(NotFound("x"), NotFound("x"));
  EXPECT_NE(NotFound("x"), NotFound("y"));
  EXPECT_NE(NotFound("x"), Internal("x"));
  EXPECT_NE(NotFound(""), Status::Ok());
}

TEST(ResultTest, HoldsValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.status().ok());
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  *r = 7;
  EXPECT_EQ(r.value(), 7);
}

TEST(ResultTest, HoldsError) {
  Result<int> r = NotFound("no such key");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no such key");
}

TEST(ResultTest, ArrowAndMoveOut) {
  Result<std::string> r = std::string("hello");
  EXPECT_EQ(r->size(), 5u);
  std::string moved = std::move(r).value();
  EXPECT_EQ(moved, "hello");
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(3);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 3);
}

Status Step(bool fail, int* reached) {
  ++*reached;
  return fail ? Aborted("step failed") : Status::Ok();
}

Status TwoSteps(bool fail_first, int* reached) {
  DTX_RETURN_IF_ERROR(Step(fail_first, reached));
  DTX_RETURN_IF_ERROR(Step(false, reached));
  return Status::Ok();
}

TEST(ReturnIfErrorTest, PropagatesFirstError) {
  int reached = 0;
  Status s = TwoSteps(true, &reached);
  EXPECT_EQ(s, Aborted("step failed"));
  EXPECT_EQ(reached, 1);
}

TEST(ReturnIfErrorTest, ContinuesOnOk) {
  int reached = 0;
  EXPECT_TRUE(TwoSteps(false, &reached).ok());
  EXPECT_EQ(reached, 2);
}

}  // namespace
}  // namespace dtx
