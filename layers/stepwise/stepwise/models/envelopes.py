"""The API's answer shapes: ``{"success": true, "data": ...}`` and friends, exactly as the seed shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DataEnvelope[T](BaseModel):
    success: Literal[True] = True
    data: T


class DataMessageEnvelope[T](BaseModel):
    success: Literal[True] = True
    data: T
    message: str


class MessageEnvelope(BaseModel):
    success: Literal[True] = True
    message: str


class ListEnvelope[T](BaseModel):
    success: Literal[True] = True
    data: list[T]
    nextCursor: str | None


class ErrorEnvelope(BaseModel):
    success: Literal[False] = False
    error: str


class StartedExecution(BaseModel):
    workflowId: str
    executionId: str


class StartedRerun(StartedExecution):
    rerunOf: str = Field(description="the execution it reruns")
