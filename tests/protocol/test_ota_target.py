"""OTA_OFFER's platform_id and product_id: what a device checks before it downloads anything."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import limits
from protocol.codes import OtaRefusal
from protocol.messages import OtaOffer, OtaRefuse, decode_message, encode_message
from protocol.ota import ImageReceiver, ReceiverState, build_offer, offer_mismatch

from .helpers import FAST

IMAGE = bytes(range(256)) * 4
platforms = st.integers(0, limits.MAX_PLATFORM_ID)
products = st.integers(1, limits.MAX_PRODUCT_ID)


def offer(platform_id: int | None = 6, product_id: int | None = 42) -> OtaOffer:
    built = build_offer(
        transfer_id=5, version=2, image=IMAGE, rx_max_frame=1024, window=4, platform_id=platform_id,
        product_id=product_id,
    )  # fmt: skip
    wired = decode_message(encode_message(built))
    assert wired == built
    assert isinstance(wired, OtaOffer)
    return wired


def test_build_offer_carries_the_header_fields() -> None:
    built = offer(12, 4201)
    assert (built.platform_id, built.product_id) == (12, 4201)


@FAST
@given(platforms, products, platforms, products)
def test_offer_mismatch_names_the_first_field_that_differs(
    image_platform: int, image_product: int, platform: int, product: int
) -> None:
    got = offer_mismatch(offer(image_platform, image_product), platform, product)
    if image_platform != platform:
        assert got is not None and got.reason is OtaRefusal.WRONG_PLATFORM
        assert f"platform {image_platform}" in got.detail and f"platform {platform}" in got.detail
    elif image_product != product:
        assert got is not None and got.reason is OtaRefusal.WRONG_PRODUCT
        assert f"product {image_product}" in got.detail
    else:
        assert got is None
    if got is not None:
        assert got.transfer_id == 5 and decode_message(encode_message(got)) == got


def test_fields_left_out_are_not_checked() -> None:
    assert offer_mismatch(offer(None, None), 6, 42) is None  # a server that does not say
    assert offer_mismatch(offer(6, 42), 6, None) is None  # development firmware names no product


@pytest.mark.parametrize(
    ("image", "reason"),
    [((12, 42), OtaRefusal.WRONG_PLATFORM), ((6, 43), OtaRefusal.WRONG_PRODUCT), ((12, 43), OtaRefusal.WRONG_PLATFORM)],
)
def test_receiver_refuses_an_image_it_cannot_run(image: tuple[int, int], reason: OtaRefusal) -> None:
    receiver = ImageReceiver()
    refusal = receiver.offer(offer(*image), platform_id=6, product_id=42)
    assert isinstance(refusal, OtaRefuse) and refusal.reason is reason
    assert receiver.state is ReceiverState.IDLE  # answered: the next offer is welcome
    assert receiver.offer(offer(6, 42), platform_id=6, product_id=42) is None
    assert receiver.accept().offset == 0


def test_receiver_without_its_own_platform_checks_nothing() -> None:
    """The old call (no platform_id) behaves as before: the caller decides."""
    receiver = ImageReceiver()
    assert receiver.offer(offer(12, 43)) is None
    assert receiver.state is ReceiverState.OFFERED
