from twisted.application.service import ServiceMaker

bbreceiver = ServiceMaker(
    "bbreceiver",
    "bbreceiver.tap",
    "Receive Bitbucket webhooks and refresh the Kargo objects they concern",
    "bbreceiver",
)
